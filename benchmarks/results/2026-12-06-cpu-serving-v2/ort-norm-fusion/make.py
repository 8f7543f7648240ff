"""The fused graphs for ab_ort.py: model.onnx of an export folder respelled (deploy/runtimes.py spell_for_ort_fusions)
and fused by onnxscript's ONNX Runtime fusions (attention, RMSNorm, SkipRMSNorm), and its dynamic int8 copy.

    python make.py --export_dir runs/serving/classifier-export --output_dir runs/serving/ort-norm-fusion
"""
import argparse
from pathlib import Path

import onnx_ir
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxscript.rewriter.ort_fusions import optimize_for_ort

from small_encoders.deploy.runtimes import spell_for_ort_fusions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = onnx_ir.load(str(Path(args.export_dir) / "model.onnx"))
    print("respelled", spell_for_ort_fusions(model))
    model, counts = optimize_for_ort(model)
    print("fused", {name: count for name, count in counts.items() if count})
    onnx_ir.save(model, str(out / "model_fused.onnx"))
    quantize_dynamic(str(out / "model_fused.onnx"), str(out / "model_fused_int8.onnx"), weight_type=QuantType.QInt8)


if __name__ == "__main__":
    main()
