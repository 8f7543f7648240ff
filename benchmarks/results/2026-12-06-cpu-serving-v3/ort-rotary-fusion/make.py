"""The fused graph with the rotary embedding fused too, for ../../2026-12-06-cpu-serving-v2/ort-norm-fusion/ab_ort.py:
model.onnx of an export folder respelled by deploy/runtimes.py spell_for_ort_fusions and, here, the rotary angles as
Llama's matrix product with cos/sin before the heads axis (rotary_angles_as_matmul below: the form onnxscript's cos/sin
cache pattern matches, without which its RotaryEmbedding fusion is undone), then fused by onnxscript's ONNX Runtime
fusions; then its dynamic int8 copy with a scale per channel, as deploy/export.py --int8 quantises. --without_rotary
skips the rotary respelling (the graph deploy/export.py --ort_fusions writes: attention and RMSNorm fused).

    python make.py --export_dir runs/serving/classifier-export --output_dir runs/serving/ort-rotary-fusion
    python make.py --export_dir runs/serving/classifier-export --output_dir runs/serving/ort-norm-only --without_rotary
"""
import argparse
from pathlib import Path

import onnx_ir
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxscript.rewriter.ort_fusions import optimize_for_ort

from small_encoders.deploy import runtimes


def rotary_angles_as_matmul(model):
    """The rotary embedding's angles, positions[..., None] * inverse_frequencies (a Mul of the float positions
    unsqueezed last and a constant [E]), written as Llama's (inverse_frequencies[1, E, 1] @ positions[:, None, :]) then
    transposed: the form onnxscript's cos/sin cache pattern matches, without which its RotaryEmbedding fusion is undone.
    A product with an inner dimension of 1 is the same multiplication. Returns how many were rewritten."""
    import numpy as np
    import onnx_ir as ir

    def constant(value):
        return value is not None and value.const_value is not None

    rewritten = 0
    for concat in list(model.graph):
        if concat.op_type != "Concat" or len(concat.inputs) != 2 or concat.inputs[0] is not concat.inputs[1]:
            continue
        mul = concat.inputs[0].producer()
        if mul is None or mul.op_type != "Mul" or len(mul.inputs) != 2 or sum(map(constant, mul.inputs)) != 1:
            continue
        frequencies, angles_of = (mul.inputs[0], mul.inputs[1]) if constant(mul.inputs[0]) else (mul.inputs[1], mul.inputs[0])
        unsqueeze = angles_of.producer()
        if frequencies.const_value.numpy().ndim != 1 or unsqueeze is None or unsqueeze.op_type != "Unsqueeze" \
                or not constant(unsqueeze.inputs[1]):
            continue
        cast = unsqueeze.inputs[0].producer()
        if cast is None or cast.op_type != "Cast" or cast.inputs[0].shape is None or cast.inputs[0].shape.rank() != 2 \
                or unsqueeze.inputs[1].const_value.numpy().tolist() not in ([-1], [2]):
            continue
        positions = cast.inputs[0]  # [batch, sequence], integer
        table = frequencies.const_value.numpy().astype(np.float32).reshape(1, -1, 1)
        inverse = ir.Value(name=f"rotary_inverse_frequencies_{rewritten}", const_value=ir.tensor(table, name=f"rotary_inverse_frequencies_{rewritten}"))
        axis = ir.Value(name=f"rotary_axis_{rewritten}", const_value=ir.tensor(np.array([1], dtype=np.int64), name=f"rotary_axis_{rewritten}"))
        model.graph.register_initializer(inverse)
        model.graph.register_initializer(axis)
        batch, sequence = positions.shape
        lifted = ir.Node("", "Unsqueeze", inputs=[positions, axis], num_outputs=1)
        as_float = ir.Node("", "Cast", inputs=[lifted.outputs[0]], attributes=[ir.AttrInt64("to", ir.DataType.FLOAT)], num_outputs=1)
        product = ir.Node("", "MatMul", inputs=[inverse, as_float.outputs[0]], num_outputs=1)
        turned = ir.Node("", "Transpose", inputs=[product.outputs[0]], attributes=[ir.AttrInt64s("perm", [0, 2, 1])], num_outputs=1)
        float_type = ir.TensorType(ir.DataType.FLOAT)
        for node, shape in ((as_float, [batch, 1, sequence]), (product, [batch, table.shape[1], sequence]), (turned, [batch, sequence, table.shape[1]])):
            node.outputs[0].shape, node.outputs[0].type = ir.Shape(shape), float_type
        lifted.outputs[0].shape, lifted.outputs[0].type = ir.Shape([batch, 1, sequence]), positions.type
        model.graph.insert_before(concat, [lifted, as_float, product, turned])
        concat.replace_input_with(0, turned.outputs[0])
        concat.replace_input_with(1, turned.outputs[0])
        for node in (mul, unsqueeze, cast):  # the old spelling, where nothing else reads it
            if not any(output.uses() for output in node.outputs):
                model.graph.remove(node, safe=True)
        trigonometry_before_heads_axis(model, concat.outputs[0])
        rewritten += 1
    return rewritten


def trigonometry_before_heads_axis(model, angles):
    """Cos(Unsqueeze(angles, [1])) and Sin(...) as Unsqueeze(Cos(angles), [1]): the same numbers, in the order of
    Llama's cos/sin that the cos/sin cache pattern matches."""
    import onnx_ir as ir

    for lift in list(angles.consumers()):
        if lift.op_type != "Unsqueeze" or lift.inputs[1] is None or lift.inputs[1].const_value is None \
                or lift.inputs[1].const_value.numpy().tolist() != [1]:
            continue
        for trig in list(lift.outputs[0].consumers()):
            if trig.op_type not in ("Cos", "Sin"):
                continue
            direct = ir.Node("", trig.op_type, inputs=[angles], num_outputs=1)
            lifted = ir.Node("", "Unsqueeze", inputs=[direct.outputs[0], lift.inputs[1]], num_outputs=1)
            direct.outputs[0].shape, direct.outputs[0].type = angles.shape, angles.type
            lifted.outputs[0].shape, lifted.outputs[0].type = trig.outputs[0].shape, trig.outputs[0].type
            model.graph.insert_before(trig, [direct, lifted])
            name = trig.outputs[0].name
            ir.convenience.replace_all_uses_with(trig.outputs[0], lifted.outputs[0])
            model.graph.remove(trig, safe=True)
            lifted.outputs[0].name = name
        if not lift.outputs[0].uses():
            model.graph.remove(lift, safe=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--without_rotary", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = onnx_ir.load(str(Path(args.export_dir) / "model.onnx"))
    respelled = runtimes.spell_for_ort_fusions(model)
    if not args.without_rotary:
        respelled["rotary_angles_matmul"] = rotary_angles_as_matmul(model)
    print("respelled", respelled)
    model, counts = optimize_for_ort(model)
    print("fused", {name: count for name, count in counts.items() if count})
    onnx_ir.save(model, str(out / "model_fused.onnx"))
    quantize_dynamic(str(out / "model_fused.onnx"), str(out / "model_fused_int8.onnx"), weight_type=QuantType.QInt8,
                     per_channel=True)


if __name__ == "__main__":
    main()
