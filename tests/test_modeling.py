"""The SmallEncoder family: config checks, attention paths, positions, heads, saving and Hub-style loading."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import HUB_USER, tiny_config

from small_encoders.modeling import (
    PRESETS,
    SmallEncoderConfig,
    SmallEncoderForMaskedLM,
    SmallEncoderForMultipleChoice,
    SmallEncoderForSequenceClassification,
    SmallEncoderForTokenClassification,
    SmallEncoderModel,
    enable_sparse_prediction,
    small_encoder_config,
)

VARIANTS = {
    "bertmini-like": dict(),
    "neobert-like": dict(mlp_type="swiglu", norm_type="rmsnorm", use_bias=False, tie_word_embeddings=False),
    "post-norm-absolute": dict(pre_norm=False, position_embedding_type="absolute"),
}


def batch(vocab, seed=0, shape=(3, 12)):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(5, vocab, shape, generator=generator)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(norm_type="batchnorm"), "norm_type"),
        (dict(mlp_type="relu"), "mlp_type"),
        (dict(position_embedding_type="alibi"), "position_embedding_type"),
        (dict(hidden_size=30, num_attention_heads=4), "divisible"),
        (dict(hidden_size=36, num_attention_heads=12), "even head dimension"),
        (dict(mlp_type="swiglu", hidden_act="gelu"), "SiLU"),
        (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob"),
        (dict(classifier_pooling="max"), "classifier_pooling"),
    ],
)
def test_invalid_config_fails_in_constructor(fields, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**fields)


def test_swiglu_width_follows_neobert_rule():
    assert tiny_config(mlp_type="swiglu", intermediate_size=3072).mlp_hidden_size == 2048
    assert tiny_config(mlp_type="swiglu", intermediate_size=1280).mlp_hidden_size == 856
    assert tiny_config(intermediate_size=1280).mlp_hidden_size == 1280


@pytest.mark.parametrize(
    "preset, expected",
    [("bertmini", 20_772_666), ("neobert", 245_728_314), ("neobert-mini", 19_756_922)],
)
def test_preset_parameter_counts(preset, expected):
    with torch.device("meta"):
        model = SmallEncoderForMaskedLM(small_encoder_config(preset))
    assert sum(p.numel() for p in model.parameters()) == expected
    assert (model.lm_head.decoder.weight is model.model.embeddings.tok_embeddings.weight) == PRESETS[preset][
        "tie_word_embeddings"
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_eager_and_sdpa_agree_with_padding(variant):
    torch.manual_seed(0)
    config = tiny_config(**VARIANTS[variant])
    sdpa = SmallEncoderForMaskedLM(config).eval()
    eager = SmallEncoderForMaskedLM(tiny_config(**VARIANTS[variant])).eval()
    eager.load_state_dict(sdpa.state_dict())
    eager.config._attn_implementation = "eager"
    assert sdpa.config._attn_implementation == "sdpa"
    ids = batch(config.vocab_size)
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    mask[2, 3:] = 0
    with torch.no_grad():
        a = sdpa(ids, attention_mask=mask).logits
        b = eager(ids, attention_mask=mask).logits
    real = mask.bool()
    assert torch.allclose(a[real], b[real], atol=1e-5)


def test_attn_implementation_argument_selects_path(tmp_path):
    SmallEncoderModel(tiny_config()).save_pretrained(tmp_path)
    model = SmallEncoderModel.from_pretrained(tmp_path, attn_implementation="eager")
    assert model.config._attn_implementation == "eager"


def test_attention_backends_agree_and_switch_at_run_time(tmp_path):
    """eager, sdpa and flex_attention through transformers' attention interface: chosen at load time or switched
    with set_attn_implementation, the same outputs (fp32, CPU) with padding and with document ids."""
    from transformers import AutoModelForMaskedLM

    torch.manual_seed(0)
    SmallEncoderForMaskedLM(tiny_config(**VARIANTS["neobert-like"])).save_pretrained(tmp_path)
    ids = batch(60, shape=(3, 20))
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    mask[2, 5:] = 0
    documents = torch.tensor([[0] * 8 + [1] * 12, [0] * 5 + [1] * 10 + [2] * 5, [0] * 20])

    def outputs(model):
        with torch.no_grad():
            return [model(ids, attention_mask=mask).logits, model(ids, attention_mask=mask, document_ids=documents).logits,
                    model(ids).logits]

    reference = outputs(AutoModelForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager").eval())
    switched = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    for implementation in ("sdpa", "flex_attention"):
        loaded = AutoModelForMaskedLM.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        assert loaded.config._attn_implementation == implementation
        switched.set_attn_implementation(implementation)
        assert all(m.config._attn_implementation == implementation for m in switched.modules() if hasattr(m, "config"))
        for model in (loaded, switched):
            for got, expected in zip(outputs(model), reference):
                assert torch.allclose(got, expected, atol=1e-5), implementation


def test_flex_attention_isolates_documents_with_a_block_mask():
    from torch.nn.attention.flex_attention import BlockMask

    from small_encoders.modeling.modeling_small_encoder import (
        build_attention_mask,
        build_flex_block_mask,
    )

    documents = torch.tensor([[0] * 130 + [1] * 126])  # two documents in a 256-token block of 128-token tiles
    padding = torch.ones_like(documents)
    block_mask = build_flex_block_mask(padding, documents, 1, 256, "cpu")
    assert isinstance(block_mask, BlockMask)
    dense = block_mask.to_dense()  # [B, H, query tiles, key tiles]: 1 where a tile is computed
    assert dense[0, 0].tolist() == [[1, 1], [1, 1]]  # both documents cross the tile boundary: no tile is skipped
    apart = torch.tensor([[0] * 128 + [1] * 128])
    assert build_flex_block_mask(padding, apart, 1, 256, "cpu").to_dense()[0, 0].tolist() == [[1, 0], [0, 1]]
    assert build_flex_block_mask(padding, None, 1, 256, "cpu") is None  # nothing to mask
    # The element-wise rule is the one the eager and sdpa paths use.
    rule = build_attention_mask(padding, documents, 256)[0, 0]
    mask_mod = build_flex_block_mask(padding, documents, 1, 256, "cpu").mask_mod
    q, kv = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    assert torch.equal(mask_mod(torch.zeros_like(q), torch.zeros_like(q), q, kv), rule)


@pytest.mark.parametrize("variant", VARIANTS)
def test_right_padding_leaves_real_positions_unchanged(variant):
    torch.manual_seed(0)
    model = SmallEncoderModel(tiny_config(**VARIANTS[variant])).eval()
    ids = batch(model.config.vocab_size, shape=(1, 8))
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 8), torch.zeros(1, 5)], dim=1).long()
    with torch.no_grad():
        alone = model(ids).last_hidden_state
        with_pad = model(padded, attention_mask=mask).last_hidden_state[:, :8]
    assert torch.allclose(alone, with_pad, atol=1e-5)


def test_rope_outputs_depend_only_on_relative_positions():
    torch.manual_seed(0)
    model = SmallEncoderModel(tiny_config()).eval()
    ids = batch(model.config.vocab_size, shape=(2, 10))
    positions = torch.arange(10).expand(2, 10)
    with torch.no_grad():
        base = model(ids, position_ids=positions).last_hidden_state
        shifted = model(ids, position_ids=positions + 17).last_hidden_state
        scrambled = model(ids, position_ids=positions.flip(-1)).last_hidden_state
    assert torch.allclose(base, shifted, atol=1e-5)
    assert not torch.allclose(base, scrambled, atol=1e-3)  # positions do matter


@pytest.mark.parametrize("variant", ["bertmini-like", "post-norm-absolute"])
def test_document_isolation_equals_documents_run_alone(variant):
    torch.manual_seed(0)
    model = SmallEncoderModel(tiny_config(**VARIANTS[variant])).eval()
    docs = [batch(model.config.vocab_size, seed=s, shape=(1, n)) for s, n in [(1, 5), (2, 4), (3, 7)]]
    packed = torch.cat(docs, dim=1)
    document_ids = torch.cat([torch.full((1, d.shape[1]), i) for i, d in enumerate(docs)], dim=1)
    with torch.no_grad():
        isolated = model(packed, document_ids=document_ids).last_hidden_state
        mixed = model(packed).last_hidden_state
        alone = torch.cat([model(d).last_hidden_state for d in docs], dim=1)
    assert torch.allclose(isolated, alone, atol=1e-5)
    assert not torch.allclose(mixed, alone, atol=1e-3)


def test_document_isolation_with_padding_has_no_nan():
    model = SmallEncoderModel(tiny_config()).eval()
    ids = batch(model.config.vocab_size, shape=(1, 8))
    document_ids = torch.tensor([[0, 0, 0, 1, 1, 9, 9, 9]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0]])
    with torch.no_grad():
        out = model(ids, attention_mask=mask, document_ids=document_ids).last_hidden_state
    assert torch.isfinite(out).all()


def mlm_labels(ids, rate=0.3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = ids.clone()
    labels[torch.rand(ids.shape, generator=generator) > rate] = -100
    return labels


@pytest.mark.parametrize("variant", VARIANTS)
def test_sparse_prediction_loss_equals_dense(variant):
    torch.manual_seed(0)
    model = SmallEncoderForMaskedLM(tiny_config(**VARIANTS[variant])).eval()
    ids = batch(model.config.vocab_size)
    labels = mlm_labels(ids)
    sparse = model(ids, labels=labels)
    model.config.sparse_prediction = False
    dense = model(ids, labels=labels)
    assert sparse.logits.shape == ((labels != -100).sum().item(), model.config.vocab_size)
    assert dense.logits.shape == (*ids.shape, model.config.vocab_size)
    assert abs(sparse.loss.item() - dense.loss.item()) < 1e-6
    assert torch.allclose(sparse.logits, dense.logits[labels != -100], atol=1e-5)


@pytest.mark.parametrize("family", ["roberta", "bert"])
def test_sparse_prediction_hooks_on_stock_models(family, tmp_path):
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        RobertaConfig,
        RobertaForMaskedLM,
    )

    torch.manual_seed(0)
    shape = dict(vocab_size=90, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    if family == "roberta":
        model = RobertaForMaskedLM(RobertaConfig(max_position_embeddings=40, **shape)).eval()
    else:
        model = BertForMaskedLM(BertConfig(max_position_embeddings=40, **shape)).eval()
    ids = batch(90)
    labels = mlm_labels(ids)
    dense = model(input_ids=ids, labels=labels)
    keys_before = set(model.state_dict())
    handles = enable_sparse_prediction(model)
    sparse = model(input_ids=ids, labels=labels)
    assert sparse.logits.shape[0] == (labels != -100).sum().item()
    assert abs(sparse.loss.item() - dense.loss.item()) < 1e-6
    assert set(model.state_dict()) == keys_before  # checkpoints look the same
    assert model(input_ids=ids).logits.shape == (*ids.shape, 90)  # no labels: dense as before
    for handle in handles:
        handle.remove()


def test_compiled_sparse_prediction_has_no_graph_break():
    import torch._dynamo

    from small_encoders.modeling.sparse_mlm import trace_sparse_selection_when_compiled

    torch.manual_seed(0)
    model = SmallEncoderForMaskedLM(tiny_config()).eval()
    ids = batch(model.config.vocab_size)
    labels = mlm_labels(ids)
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=False):  # restored afterwards for other tests
        torch._dynamo.reset()
        assert torch._dynamo.explain(model)(ids, labels=labels).graph_break_count == 2  # dynamo's default
        trace_sparse_selection_when_compiled()
        torch._dynamo.reset()
        explained = torch._dynamo.explain(model)(ids, labels=labels)
        assert explained.graph_count == 1 and explained.graph_break_count == 0
        traced = torch.compile(model, backend="eager", fullgraph=True)  # one graph, or this raises
        assert abs(traced(ids, labels=labels).loss.item() - model(ids, labels=labels).loss.item()) < 1e-6
    torch._dynamo.reset()


def test_inductor_compiled_training_step_matches_eager():
    """What `--torch_compile true` trains: inductor's step gives eager's loss and gradients (sparse prediction on)."""
    import copy

    import torch._dynamo

    from small_encoders.modeling import enable_sparse_prediction
    from small_encoders.modeling.sparse_mlm import trace_sparse_selection_when_compiled

    torch.manual_seed(0)
    eager = SmallEncoderForMaskedLM(tiny_config()).train()
    enable_sparse_prediction(eager)
    compiled_model = copy.deepcopy(eager)
    ids = batch(eager.config.vocab_size)
    labels = mlm_labels(ids)
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=False):  # restored afterwards for other tests
        trace_sparse_selection_when_compiled()
        torch._dynamo.reset()
        compiled = torch.compile(compiled_model)
        eager_loss, compiled_loss = eager(ids, labels=labels).loss, compiled(ids, labels=labels).loss
        eager_loss.backward()
        compiled_loss.backward()
    torch._dynamo.reset()
    assert abs(eager_loss.item() - compiled_loss.item()) < 1e-5
    for (name, a), b in zip(eager.named_parameters(), compiled_model.parameters()):
        assert b.grad is not None and torch.allclose(a.grad, b.grad, atol=1e-5), name


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    config = tiny_config()
    plain = SmallEncoderForMaskedLM(config).train()
    checkpointed = SmallEncoderForMaskedLM(tiny_config()).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.gradient_checkpointing_enable()
    assert checkpointed.is_gradient_checkpointing
    ids = batch(config.vocab_size)
    labels = mlm_labels(ids)
    plain(ids, labels=labels).loss.backward()
    checkpointed(ids, labels=labels).loss.backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_sequence_classification_problem_types():
    torch.manual_seed(0)
    ids = batch(60, shape=(4, 6))
    single = SmallEncoderForSequenceClassification(tiny_config(num_labels=3))
    out = single(ids, labels=torch.tensor([0, 1, 2, 1]))
    assert out.logits.shape == (4, 3) and single.config.problem_type == "single_label_classification"
    expected = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 1]))
    assert torch.allclose(out.loss, expected)
    regression = SmallEncoderForSequenceClassification(tiny_config(num_labels=1))
    regression(ids, labels=torch.tensor([0.5, 1.0, 2.0, 4.5]))
    assert regression.config.problem_type == "regression"
    multi = SmallEncoderForSequenceClassification(tiny_config(num_labels=2))
    out = multi(ids, labels=torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0]]))
    assert multi.config.problem_type == "multi_label_classification" and out.loss.ndim == 0


@pytest.mark.parametrize("head", [SmallEncoderForSequenceClassification, SmallEncoderForMultipleChoice])
def test_mean_pooling_reads_only_real_tokens(head):
    torch.manual_seed(0)
    mean = head(tiny_config(num_labels=2, classifier_pooling="mean")).eval()
    cls = head(tiny_config(num_labels=2)).eval()
    cls.load_state_dict(mean.state_dict())  # pooling adds no weights: the same state dict serves both
    real = batch(60, shape=(2, 5))
    padded = torch.cat([real, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    keep = torch.cat([torch.ones(2, 5, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long)], dim=1)
    if head is SmallEncoderForMultipleChoice:
        real, padded, keep = real[:, None], padded[:, None], keep[:, None]
    with torch.no_grad():
        alone = mean(real).logits
        with_padding = mean(padded, attention_mask=keep).logits
        states = mean.model(real.reshape(-1, 5)).last_hidden_state
        by_hand = mean.classifier.out_proj(torch.tanh(mean.classifier.dense(states.mean(dim=1))))
        first_token = cls(real).logits
    # Padding changes nothing, the pooled vector is the mean of the real tokens' states, and it is not the first token's.
    assert torch.allclose(alone, with_padding, atol=1e-5)
    assert torch.allclose(alone.reshape(-1), by_hand.reshape(-1)[: alone.numel()], atol=1e-5)
    assert not torch.allclose(alone, first_token, atol=1e-3)


def test_token_classification_and_multiple_choice_heads():
    ids = batch(60, shape=(2, 6))
    tokens = SmallEncoderForTokenClassification(tiny_config(num_labels=5))
    labels = torch.tensor([[0, 1, 2, 3, 4, -100]] * 2)
    out = tokens(ids, labels=labels)
    assert out.logits.shape == (2, 6, 5) and torch.isfinite(out.loss)
    choice = SmallEncoderForMultipleChoice(tiny_config())
    out = choice(batch(60, shape=(2, 4, 6)), attention_mask=torch.ones(2, 4, 6, dtype=torch.long), labels=torch.tensor([1, 3]))
    assert out.logits.shape == (2, 4) and torch.isfinite(out.loss)


CHILD = HUB_USER + textwrap.dedent(
    """
    import importlib.util, json, sys, torch
    assert importlib.util.find_spec("modeling") is None, "the repository must not be importable here"
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification
    folder, ids_path, out_path = sys.argv[1:]
    ids = torch.load(ids_path)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    results = {"config_class": type(config).__name__}
    for auto in (AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification):
        model = auto.from_pretrained(folder, trust_remote_code=True).eval()
        with torch.no_grad():
            out = model(ids)
        tensor = out.last_hidden_state if auto is AutoModel else out.logits
        results[auto.__name__] = tensor.tolist()
        if auto is AutoModelForMaskedLM:
            results["tied"] = model.lm_head.decoder.weight.data_ptr() == model.model.embeddings.tok_embeddings.weight.data_ptr()
    json.dump(results, open(out_path, "w"))
    """
)


def test_saved_folder_loads_in_clean_process_with_remote_code(tmp_path):
    from transformers import set_seed

    set_seed(0)
    config = tiny_config(num_labels=3)
    folder = tmp_path / "model"
    mlm = SmallEncoderForMaskedLM(config).eval()
    mlm.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert {"AutoConfig", "AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification"} <= set(saved["auto_map"])
    assert {"configuration_small_encoder.py", "modeling_small_encoder.py"} <= set(os.listdir(folder))
    for source in ("configuration_small_encoder.py", "modeling_small_encoder.py"):
        imports = [line for line in (folder / source).read_text().splitlines() if line.startswith(("import ", "from "))]
        assert all(line.split()[1].split(".")[0] in ("torch", "transformers", "") for line in imports), imports

    # The sequence-classification head is new on load; reproduce its init by loading here too, seeded alike.
    ids = batch(config.vocab_size, shape=(2, 9))
    torch.save(ids, tmp_path / "ids.pt")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    child = work / "child.py"
    child.write_text(CHILD)
    subprocess.run(
        [sys.executable, str(child), str(folder), str(tmp_path / "ids.pt"), str(tmp_path / "out.json")],
        cwd=work, env=env, check=True, capture_output=True, timeout=300,
    )
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["config_class"] == "SmallEncoderConfig"
    assert results["tied"]
    with torch.no_grad():
        expected_mlm = mlm(ids).logits
        expected_base = mlm.model(ids).last_hidden_state
    assert torch.equal(torch.tensor(results["AutoModelForMaskedLM"]), expected_mlm)
    assert torch.equal(torch.tensor(results["AutoModel"]), expected_base)
    assert torch.tensor(results["AutoModelForSequenceClassification"]).shape == (2, 3)


def test_sequence_classifier_round_trip_in_clean_process(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "classifier"
    model = SmallEncoderForSequenceClassification(tiny_config(num_labels=3)).eval()
    model.save_pretrained(folder)
    ids = batch(model.config.vocab_size, shape=(2, 9))
    code = (
        "import sys, torch, json; from transformers import AutoModelForSequenceClassification as A; "
        "m = A.from_pretrained(sys.argv[1], trust_remote_code=True).eval(); "
        "print(json.dumps(m(torch.tensor(json.loads(sys.argv[2]))).logits.tolist()))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder), json.dumps(ids.tolist())],
        cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=300,
    )
    with torch.no_grad():
        assert torch.equal(torch.tensor(json.loads(out.stdout.strip().splitlines()[-1])), model(ids).logits)


def test_untied_decoder_stays_untied_after_save(tmp_path):
    model = SmallEncoderForMaskedLM(tiny_config(tie_word_embeddings=False))
    model.save_pretrained(tmp_path)
    loaded = SmallEncoderForMaskedLM.from_pretrained(tmp_path)
    assert loaded.lm_head.decoder.weight is not loaded.model.embeddings.tok_embeddings.weight
    assert torch.equal(loaded.lm_head.decoder.weight, model.lm_head.decoder.weight)


def test_weights_tied_after_trainer_checkpoint_resume(tmp_path, tiny_tokenizer):
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    torch.manual_seed(0)
    texts = ["the captain saw the whale on the sea", "she said the old house was very small"] * 8
    data = Dataset.from_dict(dict(tiny_tokenizer(texts, truncation=True, max_length=16)))
    collator = DataCollatorForLanguageModeling(tiny_tokenizer, mlm_probability=0.3)

    def trainer(max_steps):
        model = SmallEncoderForMaskedLM(tiny_config(vocab_size=len(tiny_tokenizer)))
        args = TrainingArguments(
            output_dir=str(tmp_path / "run"), max_steps=max_steps, per_device_train_batch_size=4, save_steps=2,
            report_to=[], use_cpu=True, logging_steps=1, disable_tqdm=True,
        )
        return Trainer(model=model, args=args, train_dataset=data, data_collator=collator)

    trainer(2).train()
    resumed = trainer(4)
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    model = resumed.model
    assert model.lm_head.decoder.weight is model.model.embeddings.tok_embeddings.weight
    reloaded = SmallEncoderForMaskedLM.from_pretrained(tmp_path / "run" / "checkpoint-4")
    assert reloaded.lm_head.decoder.weight is reloaded.model.embeddings.tok_embeddings.weight
    assert torch.equal(reloaded.model.embeddings.tok_embeddings.weight, model.model.embeddings.tok_embeddings.weight)


def test_fill_mask_pipeline_on_saved_folder(tmp_path, tiny_tokenizer):
    from transformers import pipeline

    folder = tmp_path / "model"
    SmallEncoderForMaskedLM(tiny_config(vocab_size=len(tiny_tokenizer))).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    fill = pipeline("fill-mask", model=str(folder), trust_remote_code=True, device="cpu")
    predictions = fill("the captain saw the [MASK] .")
    assert len(predictions) == 5
    assert all(p["token_str"] and 0 <= p["score"] <= 1 for p in predictions)
    assert sorted(p["score"] for p in predictions)[::-1] == [p["score"] for p in predictions]


@pytest.mark.parametrize("head", [SmallEncoderModel, SmallEncoderForMaskedLM, SmallEncoderForSequenceClassification,
                                  SmallEncoderForTokenClassification])
def test_output_flags_fall_back_to_the_config(head, tmp_path):
    head(tiny_config()).save_pretrained(tmp_path)
    ids = batch(60, shape=(2, 5))
    model = head.from_pretrained(tmp_path, output_hidden_states=True, output_attentions=True).eval()
    out = model(ids)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2 and out.attentions[0].shape == (2, 4, 5, 5)
    assert model(ids, output_hidden_states=False, output_attentions=False).hidden_states is None  # the call wins
    plain = head.from_pretrained(tmp_path, return_dict=False).eval()
    assert isinstance(plain(ids), tuple) and not isinstance(plain(ids, return_dict=True), tuple)
    assert isinstance(head.from_pretrained(tmp_path).eval()(ids, return_dict=False), tuple)


def test_output_hidden_states_and_attentions():
    model = SmallEncoderModel(tiny_config()).eval()
    out = model(batch(60, shape=(2, 5)), output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == (2, 4, 5, 5)
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(2, 4, 5), atol=1e-5)


def test_config_round_trips_through_json(tmp_path):
    config = tiny_config(mlp_type="swiglu", norm_type="rmsnorm", rope_theta=50000.0)
    config.save_pretrained(tmp_path)
    loaded = SmallEncoderConfig.from_pretrained(tmp_path)
    assert (loaded.mlp_type, loaded.norm_type, loaded.rope_theta) == ("swiglu", "rmsnorm", 50000.0)


def test_rmsnorm_under_bf16_autocast_runs_fused_and_trains_its_float32_weight():
    """Under bf16 autocast the RMSNorm input is bf16 and its weight float32: torch.rms_norm warned "Mismatch dtype
    between input and weight ... Cannot dispatch to fused implementation" (the first H200 run) and ran unfused. The
    weight is cast to the input's dtype: no warning, the same loss, and the float32 weight still gets its gradient."""
    import warnings

    from small_encoders.modeling import SmallEncoderForMaskedLM
    from small_encoders.modeling.modeling_small_encoder import SmallEncoderRMSNorm

    torch.manual_seed(0)
    model = SmallEncoderForMaskedLM(tiny_config(norm_type="rmsnorm", mlp_type="swiglu", pre_norm=True))
    ids = torch.randint(5, 60, (2, 16))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
    assert not [w for w in caught if "Mismatch dtype" in str(w.message)]
    norm = next(m for m in model.modules() if isinstance(m, SmallEncoderRMSNorm))
    assert norm.weight.dtype == torch.float32 and norm.weight.grad is not None and norm.weight.grad.abs().sum() > 0
    with torch.no_grad():  # in float32 it is nn.RMSNorm exactly
        hidden = torch.randn(2, 3, norm.weight.shape[0])
        reference = torch.nn.RMSNorm(norm.weight.shape[0], eps=norm.eps)
        reference.weight.copy_(norm.weight)
        assert torch.equal(norm(hidden), reference(hidden))
