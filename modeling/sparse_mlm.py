"""Sparse prediction for stock Hugging Face MLMs (RobertaForMaskedLM, BertForMaskedLM, ElectraForMaskedLM) during
training.

The SmallEncoder family and ModernBERT do this inside their forward (config.sparse_prediction). Stock models compute the MLM head at every
position; these hooks make them compute it only where the label is not -100, without adding any
parameter or buffer, so checkpoints are unchanged. The hooks live on inner modules and the model is
still called through its own forward, so DDP/FSDP wrappers keep working.
"""

HEAD_NAMES = ("lm_head", "cls", "generator_predictions")  # RoBERTa, BERT, ELECTRA's generator


def enable_sparse_prediction(model):
    """Make `model(..., labels=...)` score only labelled positions; returns the hook handles (call .remove())."""
    if getattr(model.config, "model_type", None) in ("small_encoder", "modernbert"):  # a switch of their own
        model.config.sparse_prediction = True
        return []
    head = next((getattr(model, name) for name in HEAD_NAMES if hasattr(model, name)), None)
    if head is None:
        raise ValueError(f"{type(model).__name__} has no MLM head named one of {HEAD_NAMES}")
    state = {}

    def select_labels(module, args, kwargs):
        labels = kwargs.get("labels")
        state["scored"] = None if labels is None else labels != -100
        if labels is not None:
            # The model's loss then flattens [N] labels against [N, vocab] logits: the dense loss, restricted.
            kwargs["labels"] = labels[state["scored"]]
        return args, kwargs

    def select_hidden(module, args):
        scored = state.get("scored")
        if scored is None:
            return None
        return (args[0][scored],) + tuple(args[1:])

    return [
        model.register_forward_pre_hook(select_labels, with_kwargs=True),
        head.register_forward_pre_hook(select_hidden),
    ]


def trace_sparse_selection_when_compiled():
    """Let `torch.compile` trace the selection of labelled positions instead of breaking the graph there.

    Picking the labelled rows has a data-dependent size (`nonzero`), which dynamo otherwise answers with a
    graph break on each side of it (2 in the SmallEncoder forward, 4 in a hooked stock model). This is a
    process-wide dynamo setting; the recipes and the benchmark turn it on only when they compile.
    """
    import torch._dynamo

    torch._dynamo.config.capture_dynamic_output_shape_ops = True
