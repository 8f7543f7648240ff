"""What the faster CPU runtimes need, written by deploy/export.py beside model.onnx, and the pick among them:

- OpenVINO: the ONNX graph converted to OpenVINO's IR (openvino/model.xml, float32 weights; the runtime chooses bf16
  on CPUs with AMX or AVX-512 BF16), and with calibration text an int8 copy made by NNCF's post-training
  quantisation (openvino/model_int8.xml).
- ONNX Runtime static int8 (model_int8_static.onnx): int8 weights and int8 activations whose scales come from
  calibration text (quantize_static, QDQ), where dynamic int8 measures each activation again on every call.
- The pick: every artefact written is timed on held-out sentences of the calibration text (batches of 32, the
  artefacts taking turns) and compared with PyTorch on them; those within the quality check, fastest first, are
  export.json's `serving.ranking`, which deploy/serving.py's "auto" follows on this kind of CPU.

Calibration text is a GLUE task's train sentences (--calibration_task, --data_dir): never the dev set a benchmark
reads. A sentence embedder's default is STS-B train.
"""

import statistics
import time
from pathlib import Path

from small_encoders.core.errors import UserError
from small_encoders.deploy.serving import BACKENDS, INSTALL, Runner, cpu_features, installed

# The quality check of a reduced-precision artefact against PyTorch on the held-out sentences: the share of
# predictions that agree (a classifier, a masked LM) or the mean cosine of the outputs (vectors, hidden states).
MIN_AGREEMENT = {"sequence-classification": 0.99, "fill-mask": 0.95, "sentence-embedding": 0.99, "feature-extraction": 0.98}
PICK_BATCH = 32
LATENCY_SENTENCES = 64  # timed one at a time for the latency ranking


def calibration_sentences(task, data_dir, count):
    """Up to `count` rows of a GLUE task's train split as (texts, second texts or None), shuffled with a fixed seed."""
    from small_encoders.eval.glue_data import TASKS, load_glue

    if task not in TASKS:
        raise UserError(f"--calibration_task {task}: choose a GLUE task ({', '.join(TASKS)})")
    try:
        train = load_glue(task, data_dir, splits=["train"])["train"]
    except (OSError, ValueError) as error:
        raise UserError(f"--calibration_task {task}: cannot read its train split ({str(error).splitlines()[0]})") from None
    train = train.shuffle(seed=0).select(range(min(count, len(train))))
    first, second = list(train["sentence1"]), list(train["sentence2"])
    if task == "stsb":  # an embedder reads sentences one at a time: both sides of each pair, alone
        return first + second, None
    return first, (second if TASKS[task]["text"][1] else None)


def require(module, flag):
    if not installed(module):
        raise UserError(f"{flag} needs the {module} package, which is not installed: {INSTALL[module]}")


def write_openvino(staging, feeds_batches, tolerance, check):
    """openvino/model.xml from model.onnx, checked in strict float32 against the ONNX export within `tolerance`;
    with calibration batches, openvino/model_int8.xml (NNCF). Returns the record's openvino entry."""
    import numpy as np
    import openvino

    folder = staging / "openvino"
    folder.mkdir(exist_ok=True)
    model = openvino.convert_model(str(staging / "model.onnx"))
    openvino.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)
    strict = Runner(folder / "model.xml", "openvino", INFERENCE_PRECISION_HINT="f32")
    difference = max(float(np.abs(strict(feeds) - check(feeds)).max()) for feeds in feeds_batches[:2])
    if not difference <= tolerance:
        raise UserError(f"OpenVINO's float32 run of the export differs from ONNX Runtime by {difference:.3g}, more than "
                        f"--tolerance {tolerance:g}; nothing was written")
    fused = openvino_fusions(strict.compiled)
    entry = {"ir": "openvino/model.xml", "float32_max_abs_difference": difference, "version": openvino.__version__,
             "fused": fused}
    print(f"OpenVINO IR openvino/model.xml: float32 within {difference:.2e} of ONNX Runtime; compiled for this CPU with "
          f"{', '.join(f'{name} x{count}' for name, count in fused.items()) or 'none of its fused operators'}")
    return entry


OPENVINO_FUSED = ("RoPE", "RMS", "MVN", "ScaledDotProductAttention")  # its CPU plugin's fused operators for encoders


def openvino_fusions(compiled):
    """{fused operator: count} in the graph OpenVINO's CPU plugin compiled (rotary embedding, RMSNorm, LayerNorm as
    MVN, attention): which of the export's patterns it recognised."""
    import collections

    kinds = collections.Counter(op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ops())
    return {name: kinds[name] for name in OPENVINO_FUSED if kinds[name]}


def write_openvino_int8(staging, calibration):
    import nncf
    import openvino

    from small_encoders.deploy.export import quiet_logger

    model = openvino.Core().read_model(str(staging / "openvino" / "model.xml"))
    with quiet_logger("nncf"):
        nncf.set_log_level(40)
        quantized = nncf.quantize(model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=sum(len(feeds["input_ids"]) for feeds in calibration))
    openvino.save_model(quantized, str(staging / "openvino" / "model_int8.xml"))
    return {"quantization": f"NNCF {nncf.__version__} post-training, transformer preset", "ir": "openvino/model_int8.xml"}


def write_ort_static(staging, calibration, scales):
    """model_int8_static.onnx: ONNX Runtime's static quantisation (QDQ, int8 weights per channel, activations whose
    ranges come from the calibration batches)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from small_encoders.deploy.export import quiet_logger

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration)

        def get_next(self):
            return next(self.batches, None)

    with quiet_logger(""):
        quantize_static(str(staging / "model.onnx"), str(staging / "model_int8_static.onnx"), Reader(),
                        quant_format=QuantFormat.QDQ, per_channel=scales == "channel", weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8, op_types_to_quantize=["MatMul", "Gemm"],
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    return {"quantization": "onnxruntime static (QDQ), QInt8 weights, QUInt8 activations, MatMul/Gemm",
            "file": "model_int8_static.onnx"}


def spell_for_ort_fusions(model):
    """Rewrite two spellings that onnxscript's ONNX Runtime fusions do not match into ones they do, computing the same
    numbers: RMSNorm's ReduceMean over the last axis named by its index (torch's rms_norm exports axes [2]; the
    SimplifiedLayerNormalization pattern wants [-1]), and rotate-half's multiplication by -1 (the form OpenVINO's RoPE
    fusion matches; the RotaryEmbedding pattern wants Neg). `model` is an onnx_ir model, changed in place; returns
    {rewrite: count}. (The rotary embedding's own fusion, tried and not kept: benchmarks/results/
    2026-12-06-cpu-serving-v3/ort-rotary-fusion.)"""
    import numpy as np
    import onnx_ir as ir

    counts, last_axis = {"reduce_mean_last_axis": 0, "neg": 0}, None
    for node in list(model.graph):
        if node.op_type == "ReduceMean" and len(node.inputs) > 1 and node.inputs[1] is not None:
            axes, shape = node.inputs[1].const_value, node.inputs[0].shape
            if axes is not None and shape is not None and axes.numpy().tolist() == [shape.rank() - 1]:
                if last_axis is None:
                    last_axis = ir.Value(name="reduce_last_axis", const_value=ir.tensor(np.array([-1], dtype=np.int64),
                                                                                      name="reduce_last_axis"))
                    model.graph.register_initializer(last_axis)
                node.replace_input_with(1, last_axis)
                counts["reduce_mean_last_axis"] += 1
        elif node.op_type == "Mul" and node.domain == "" and len(node.inputs) == 2:
            constant = [i for i, value in enumerate(node.inputs) if value is not None and value.const_value is not None
                        and value.const_value.numpy().size == 1 and float(value.const_value.numpy().reshape(())) == -1.0]
            if len(constant) == 1:
                negated = ir.Node("", "Neg", inputs=[node.inputs[1 - constant[0]]], num_outputs=1)
                model.graph.insert_before(node, negated)
                out = negated.outputs[0]
                out.shape, out.type = node.outputs[0].shape, node.outputs[0].type
                ir.convenience.replace_all_uses_with(node.outputs[0], out)
                name = node.outputs[0].name
                model.graph.remove(node, safe=True)
                out.name = name
                counts["neg"] += 1
    return counts


def write_fused(staging, feeds, expected, tolerance):
    """model_fused.onnx: model.onnx rewritten by onnxscript's ONNX Runtime fusions (attention into the com.microsoft
    MultiHeadAttention operator, RMSNorm and the residual add before it into (Skip)SimplifiedLayerNormalization, where
    the graph matches; spell_for_ort_fusions first), checked against PyTorch within `tolerance`. Returns the record's
    entry: which fusions matched."""
    import numpy as np
    import onnx_ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    model = onnx_ir.load(str(staging / "model.onnx"))
    spelled = spell_for_ort_fusions(model)
    model, counts = optimize_for_ort(model)
    onnx_ir.save(model, str(staging / "model_fused.onnx"))
    difference = float(np.abs(Runner(staging / "model_fused.onnx", "onnxruntime-fused")(feeds) - expected).max())
    if not difference <= tolerance:
        raise UserError(f"the fused graph differs from PyTorch by {difference:.3g}, more than --tolerance {tolerance:g}; "
                        f"nothing was written (export without --ort_fusions)")
    matched = {name: count for name, count in counts.items() if count}
    print(f"fused graph model_fused.onnx: {', '.join(f'{n} x{c}' for n, c in matched.items()) or 'no fusion matched'}; "
          f"within {difference:.2e} of PyTorch")
    return {"file": "model_fused.onnx", "fusions": matched, "respelled": spelled, "max_abs_difference": difference}


def single_sentences(batches, count=LATENCY_SENTENCES):
    """The first `count` sentences of the batches one at a time, each cut to its own length (as a server sees them)."""
    out = []
    for batch in batches:
        for row in range(len(batch["input_ids"])):
            length = int(batch["attention_mask"][row].sum())
            out.append({name: value[row:row + 1, :length] for name, value in batch.items()})
            if len(out) == count:
                return out
    return out


def timed_turns(runners, inputs, rounds):
    """Sentences per second of each runner on `inputs` (the runners taking turns, the order reversed every other
    round; the median of `rounds`), and each runner's outputs from its first round."""
    names = list(runners)
    sentences = sum(len(feeds["input_ids"]) for feeds in inputs)
    rates, outputs = {name: [] for name in names}, {}
    for round_number in range(rounds):
        for name in names if round_number % 2 == 0 else list(reversed(names)):
            started, got = time.perf_counter(), [runners[name](feeds) for feeds in inputs]
            rates[name].append(sentences / (time.perf_counter() - started))
            outputs.setdefault(name, got)
    return {name: statistics.median(rates[name]) for name in names}, outputs


def pick(staging, batches, expected, task, threads=None, rounds=3):
    """Time every artefact in the folder whose runtime is installed on `batches` (turns, `rounds` rounds, the median)
    and one sentence at a time, and compare it with PyTorch's `expected` outputs: the export.json `serving` entry,
    its `ranking` fastest first at batch 32 (throughput) and its `latency_ranking` fastest first one sentence at a
    time, among the artefacts that pass the quality check."""
    import numpy as np

    from small_encoders.deploy.export import agreement

    names = [name for name, (module, file, _) in BACKENDS.items() if (staging / file).is_file() and installed(module)]
    runners = {name: Runner(staging / BACKENDS[name][1], name, threads) for name in names}
    for name, runner in runners.items():  # warm-up: first calls compile and allocate
        runner(batches[0])
    rates, outputs = timed_turns(runners, batches, rounds)
    singles = single_sentences(batches)
    single_rates, _ = timed_turns(runners, singles, rounds)
    sizes = [len(b["input_ids"]) for b in batches]
    measured = {}
    for name in names:
        agreed = float(np.average([agreement(g, e, task, b["attention_mask"]) for g, e, b in zip(outputs[name], expected, batches)],
                                  weights=sizes))
        measured[name] = {"sentences_per_second": round(rates[name], 1),
                          "sentences_per_second_batch1": round(single_rates[name], 1), "agreement": round(agreed, 5),
                          "passes": agreed >= MIN_AGREEMENT[task], "precision": runners[name].precision}
    passing = [n for n in names if measured[n]["passes"]]
    ranking = sorted(passing, key=lambda n: -measured[n]["sentences_per_second"])
    latency_ranking = sorted(passing, key=lambda n: -measured[n]["sentences_per_second_batch1"])
    base = measured.get("onnxruntime", {}).get("sentences_per_second")
    print(f"serving pick on {sum(sizes)} held-out sentences, batch {PICK_BATCH} and one at a time ({len(singles)}), "
          f"median of {rounds} rounds (agreement with PyTorch: "
          f"{'mean cosine' if task not in ('sequence-classification', 'fill-mask') else 'predictions'}, at least {MIN_AGREEMENT[task]}):")
    for name in names:
        row = measured[name]
        ratio = f" ({row['sentences_per_second'] / base:.2f}x ONNX Runtime float32)" if base else ""
        print(f"  {name:<24} {row['sentences_per_second']:>8,.1f} sentences/s at batch {PICK_BATCH}{ratio}, "
              f"{row['sentences_per_second_batch1']:,.1f} one at a time; agreement {row['agreement']:.4f}"
              f"{'' if row['passes'] else ' (fails the check: not served by default)'}; {row['precision']}")
    if ranking:
        print(f"default backend: {ranking[0]} for batches, {latency_ranking[0]} one sentence at a time "
              f"(deploy/serving.py loads it: prefer='throughput' or 'latency'; force another with backend=...)")
    return {"ranking": ranking, "default": ranking[0] if ranking else None, "latency_ranking": latency_ranking,
            "latency_default": latency_ranking[0] if latency_ranking else None, "measured": measured,
            "batch_size": PICK_BATCH, "sentences": sum(sizes), "latency_sentences": len(singles), "rounds": rounds,
            "min_agreement": MIN_AGREEMENT[task], "threads": threads, "cpu_features": cpu_features()}


def batches_from(tokenizer, texts, pairs, names, max_length, size=PICK_BATCH):
    """Batches of `size` sentences, each padded to its longest."""
    out = []
    for start in range(0, len(texts), size):
        chunk = texts[start:start + size]
        second = pairs[start:start + size] if pairs is not None else None
        encoded = tokenizer(chunk, second, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        out.append({name: encoded[name].astype("int64") for name in names})
    return out


def stage(args, staging, task, tokenizer, names, max_length, expected_of):
    """Write what --ort_fusions, --openvino and --int8_static ask, calibrated on --calibration_task's train sentences (STS-B train for
    a sentence embedder when --data_dir is given), and pick the default backend on the held-out ones.
    `expected_of(feeds)` is PyTorch's output. Returns the export record's entries."""
    record = {}
    if args.openvino:
        require("openvino", "--openvino")
    calibration_task = args.calibration_task or ("stsb" if task == "sentence-embedding" and args.data_dir else None)
    if args.int8_static and not calibration_task:
        raise UserError("--int8_static needs calibration text: --calibration_task TASK --data_dir DIR (a GLUE task's "
                        "train sentences, e.g. sst2)")
    calibration, held_out = None, None
    if calibration_task:
        texts, pairs = calibration_sentences(calibration_task, args.data_dir, args.calibration_sentences + args.pick_sentences)
        cut = min(args.calibration_sentences, len(texts) // 2)
        calibration = batches_from(tokenizer, texts[:cut], pairs[:cut] if pairs else None, names, max_length, 8)
        held_out = batches_from(tokenizer, texts[cut:cut + args.pick_sentences],
                                pairs[cut:cut + args.pick_sentences] if pairs else None, names, max_length)
        record["calibration"] = {"task": calibration_task, "split": "train", "sentences": cut,
                                 "held_out_sentences": sum(len(b["input_ids"]) for b in held_out)}
    if args.ort_fusions:
        sample = expected_sample(tokenizer, names, max_length)
        expected = expected_of(sample)
        record["ort_fusions"] = write_fused(staging, sample, expected, args.tolerance)
        if args.int8:  # the fused graph quantised as --int8 quantises model.onnx (faster for a SmallEncoder here: docs/performance.md)
            from small_encoders.deploy.export import quantize_int8

            _, record["ort_fusions"]["int8"] = quantize_int8(staging, Path(args.output_dir), sample, expected, task,
                                                             args.int8_scales, "model_fused.onnx", "model_fused_int8.onnx")
    if args.int8_static:
        record["int8_static"] = write_ort_static(staging, calibration, args.int8_scales)
    if args.openvino:
        checked = held_out or [expected_sample(tokenizer, names, max_length)]
        record["openvino"] = write_openvino(staging, checked, args.tolerance, Runner(staging / "model.onnx", "onnxruntime"))
        if calibration:
            require("nncf", "--openvino with calibration text")
            record["openvino"]["int8"] = write_openvino_int8(staging, calibration)
    if held_out:
        record["serving"] = pick(staging, held_out, [expected_of(feeds) for feeds in held_out], task, threads=args.threads)
    return record


def expected_sample(tokenizer, names, max_length):
    from small_encoders.deploy.export import CHECK_SENTENCES, encode

    return encode(tokenizer, CHECK_SENTENCES, names, max_length)
