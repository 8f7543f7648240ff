"""A Gradio page to look at a model before fine-tuning it: fill-mask, sentence similarity and, for a folder
with a fine-tuned sequence-classification head, classification with the label names.

    python demo/app.py --model_name_or_path runs/quickstart                 # http://127.0.0.1:7860
    python demo/app.py --model_name_or_path runs/glue-sst2-model --port 7861
    python demo/app.py --model_name_or_path you/tuned-5m                    # a Hub id
    python demo/app.py --onnx runs/sst2-onnx                                # deploy/export.py's folder, no torch

It loads stock RoBERTa / BERT / ELECTRA folders and SmallEncoder folders (their modeling code travels with
the folder, so it is loaded with `trust_remote_code`). With `--onnx` it serves an export instead, with onnxruntime or
OpenVINO and tokenizers alone, loaded by deploy/serving.py (the artefact the export measured fastest one sentence at a time that the
installed runtimes can run, or `--backend NAME`; the export's one task). The same file
is the app of a Hugging Face Space: `model_cards/publish.py --space_id ...` writes it with a `space_config.json`
naming the model (and, with `--onnx`, the export's folder in the model's repository, so the Space needs no torch).
A folder that is not a model, or a sentence without the mask token, gets a message on the page instead of a
traceback.
"""

import argparse
import json
import os
import sys
from functools import lru_cache
from pathlib import Path

SPACE_CONFIG = Path(__file__).with_name("space_config.json")


def source_problem(name):
    """Why `name` is neither a local path nor a Hub id this machine can read (core/hub.py, where small_encoders is
    installed), or None; None too in a Space, which has this file alone and the Hub at hand."""
    try:
        from small_encoders.core.errors import UserError
        from small_encoders.core.hub import check_source
    except ImportError:
        return None
    try:
        check_source(name, "--model_name_or_path")
    except UserError as error:
        return str(error)
    return None
MAX_SENTENCES = 16


class DemoError(Exception):
    """A problem with the model or the input, shown on the page as a message."""


def pooling_of(name):
    """"cls" when a model folder (or Hub repository) is a sentence-transformers model pooling the first token, else
    "mean" (its own setting for mean-pooled embedders, and the default for a plain encoder)."""
    path = Path(name) / "1_Pooling" / "config.json"
    if not path.is_file() and not Path(name).exists():
        try:  # a Hub model: its pooling file, when it has one
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(name, "1_Pooling/config.json"))
        except Exception:  # no such file, or no network: a plain encoder, mean-pooled
            return "mean"
    if not path.is_file():
        return "mean"
    settings = json.loads(path.read_text())
    return "cls" if settings.get("pooling_mode") == "cls" or settings.get("pooling_mode_cls_token") else "mean"


class Demo:
    """The model behind the page: what it can do is decided by the heads its config names."""

    def __init__(self, model_name_or_path):
        import torch
        from transformers import AutoConfig, AutoTokenizer

        self.torch = torch
        self.name = str(model_name_or_path)
        problem = source_problem(self.name)
        if problem:
            raise DemoError(f"{self.name!r} is not a model folder or Hub id this page can load: {problem}")
        try:
            self.config = AutoConfig.from_pretrained(self.name, trust_remote_code=True)
            self.tokenizer = AutoTokenizer.from_pretrained(self.name, trust_remote_code=True)
        except (OSError, ValueError, KeyError) as error:
            raise DemoError(f"{self.name!r} is not a model folder or Hub id this page can load: "
                            f"{str(error).strip().splitlines()[0]}") from None
        architectures = self.config.architectures or []
        self.has_mlm_head = any(a.endswith("ForMaskedLM") for a in architectures)
        self.has_classifier = any(a.endswith("ForSequenceClassification") for a in architectures)
        self.max_length = min(self.tokenizer.model_max_length or 512,
                              getattr(self.config, "max_position_embeddings", 512) - 2, 512)

    def _load(self, auto_class):
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # loading an MLM folder as a bare encoder reports the unused head: expected
        try:
            return auto_class.from_pretrained(self.name, trust_remote_code=True, dtype=self.torch.float32).eval()
        finally:
            hf_logging.set_verbosity(verbosity)

    @property
    def masked_lm(self):
        if not hasattr(self, "_masked_lm"):
            from transformers import AutoModelForMaskedLM

            self._masked_lm = self._load(AutoModelForMaskedLM)
        return self._masked_lm

    @property
    def encoder(self):
        if not hasattr(self, "_encoder"):
            from transformers import AutoModel

            self._encoder = self._load(AutoModel)
        return self._encoder

    @property
    def classifier(self):
        if not hasattr(self, "_classifier"):
            from transformers import AutoModelForSequenceClassification

            self._classifier = self._load(AutoModelForSequenceClassification)
        return self._classifier

    @property
    def mask_token(self):
        return self.tokenizer.mask_token

    def describe(self):
        parts = ["fill-mask" if self.has_mlm_head else None, "sentence similarity",
                 "classification" if self.has_classifier else None]
        heads = ", ".join(p for p in parts if p)
        kind = (self.config.architectures or [self.config.model_type])[0]
        return f"**{self.name}**: {kind}, vocabulary {len(self.tokenizer):,}, reads up to {self.max_length} tokens. Here: {heads}."

    def fill_mask(self, text, top_k=5):
        """[(token, probability)] for the first mask token in `text`, best first."""
        mask = self.tokenizer.mask_token
        if not self.has_mlm_head:
            raise DemoError(f"this model has no masked-LM head ({', '.join(self.config.architectures or ['none'])}); "
                            f"fill-mask needs a pretrained MLM folder")
        if not text or mask not in text:
            raise DemoError(f"put the mask token {mask} in the sentence, e.g. `The cat sat on the {mask}.`")
        batch = self.tokenizer(text, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch.pop("token_type_ids", None)
        positions = (batch["input_ids"][0] == self.tokenizer.mask_token_id).nonzero().flatten()
        if len(positions) == 0:
            raise DemoError(f"the mask token {mask} fell beyond the {self.max_length} tokens this model reads")
        with self.torch.no_grad():
            logits = self.masked_lm(**batch).logits[0, positions[0]]
        probabilities = logits.float().softmax(-1)
        values, ids = probabilities.topk(int(top_k))
        return [(self.tokenizer.decode([i]).strip(), float(v)) for v, i in zip(values, ids.tolist())]

    def similarity(self, sentences):
        """Cosine similarities of the mean-pooled last hidden states, as a square list of lists."""
        sentences = [s.strip() for s in sentences if s.strip()]
        if len(sentences) < 2:
            raise DemoError("give at least two sentences, one per line")
        if len(sentences) > MAX_SENTENCES:
            raise DemoError(f"give at most {MAX_SENTENCES} sentences")
        batch = self.tokenizer(sentences, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch.pop("token_type_ids", None)
        with self.torch.no_grad():
            hidden = self.encoder(**batch).last_hidden_state.float()
        if self.pooling == "cls":
            vectors = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vectors = (hidden * mask).sum(1) / mask.sum(1)
        pooled = self.torch.nn.functional.normalize(vectors, dim=-1)
        return sentences, (pooled @ pooled.T).tolist()

    @property
    def pooling(self):
        """The folder's own sentence pooling (a sentence embedder's 1_Pooling/config.json: mean or cls), else mean."""
        if not hasattr(self, "_pooling"):
            self._pooling = pooling_of(self.name)
        return self._pooling

    def classify(self, text, text_pair=None):
        """[(label name, probability)] best first, or [(name, score)] for a one-output (regression) head."""
        if not self.has_classifier:
            raise DemoError("this folder holds no fine-tuned classification head; fine-tune one with "
                            "`python eval/run_glue.py ... --save_model DIR` and open DIR here")
        if not text or not text.strip():
            raise DemoError("type a sentence to classify")
        pair = (text, text_pair) if text_pair and text_pair.strip() else (text,)
        batch = self.tokenizer(*pair, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch.pop("token_type_ids", None)
        with self.torch.no_grad():
            logits = self.classifier(**batch).logits[0].float()
        names = self.config.id2label
        if logits.numel() == 1:
            return [(names.get(0, "score"), float(logits[0]))]
        probabilities = logits.softmax(-1).tolist()
        return sorted(((names.get(i, f"LABEL_{i}"), p) for i, p in enumerate(probabilities)), key=lambda x: -x[1])


HUB_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def serving_module(folder):
    """deploy/serving.py: the package's when it is installed, else the copy deploy/export.py put in the export folder
    (a Space, a Hub user)."""
    try:
        from small_encoders.deploy import serving

        return serving
    except ImportError:
        import importlib.util

        path = Path(folder) / "serving.py"
        if not path.is_file():
            raise DemoError(f"{folder}: the export has no serving.py (export it again with deploy/export.py)") from None
        spec = importlib.util.spec_from_file_location("serving", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


class OnnxDemo:
    """The page served from an export (deploy/export.py's folder) with onnxruntime or OpenVINO and tokenizers alone,
    loaded by deploy/serving.py (the fastest artefact the installed runtimes can run, or `backend`): the export's one
    task, fill-mask (a masked-LM export), classification (a classifier's) or sentence similarity (an embedder's or a
    bare encoder's). `onnx` is the export's folder, or in a Space the folder's name in the model's Hub repository
    (model_cards/publish.py --onnx puts it under onnx/, the tokenizer and config.json at the repository's root)."""

    def __init__(self, model_name_or_path, onnx, backend="auto"):
        self.name = str(model_name_or_path)
        folder = Path(onnx)
        if not folder.is_dir():
            if self.name == str(onnx) or Path(self.name).exists():  # a local model: its export must be local too
                raise DemoError(f"--onnx {onnx}: no such folder (make one with deploy/export.py)")
            folder = self._download(onnx)
        if not (folder / "export.json").is_file():
            raise DemoError(f"--onnx {onnx}: not an export folder (make one with deploy/export.py)")
        try:
            import numpy
            import tokenizers  # noqa: F401
        except ImportError as error:
            raise DemoError(f"serving an export needs numpy, tokenizers and onnxruntime or openvino ({error})") from None
        serving = serving_module(folder)
        self.np = numpy
        try:
            self.model = serving.ExportedModel(folder, backend, prefer="latency")  # the page answers one text at a time
        except serving.ServingError as error:
            raise DemoError(f"--onnx {onnx}: {error}") from None
        self.record, self.task, self.config = self.model.record, self.model.task, self.model.config
        self.tokenizer, self.max_length = self.model.tokenizer, self.model.max_length
        self.mask_token = self.model.settings.get("mask_token") or "[MASK]"
        self.has_mlm_head = self.task == "fill-mask"
        self.has_classifier = self.task == "sequence-classification"

    def _download(self, subfolder):
        """The export's folder of a Hub repository (a Space: `name` is the model's repo id), as a local folder."""
        try:
            from huggingface_hub import snapshot_download

            local = snapshot_download(self.name, allow_patterns=[f"{subfolder}/*", *HUB_FILES])
        except Exception as error:  # no network, no such repository, no such folder
            raise DemoError(f"{self.name!r}: cannot read its ONNX export {subfolder}/ ({type(error).__name__})") from None
        return Path(local) / subfolder

    def describe(self):
        what = {"fill-mask": "fill-mask", "sequence-classification": "classification",
                "feature-extraction": "sentence similarity", "sentence-embedding": "sentence similarity"}.get(self.task, self.task)
        return (f"**{self.name}**: {self.model.describe()}, a {self.record.get('model_type', 'model')} {self.task} export, "
                f"vocabulary {self.tokenizer.get_vocab_size():,}, reads up to {self.max_length} tokens. Here: {what}.")

    def _refuse(self, wanted):
        task = {"fill-mask": "fill-mask", "classification": "sequence-classification"}.get(wanted, "feature-extraction")
        return DemoError(f"this ONNX export serves {self.task} only; {wanted} needs an export with --task {task} "
                         f"(deploy/export.py), or the model folder without --onnx")

    def _run(self, encodings):
        feeds = self.model.feeds(encodings)
        return self.model.runner(feeds), feeds["attention_mask"]

    def _softmax(self, logits):
        exp = self.np.exp(logits - logits.max())
        return exp / exp.sum()

    def fill_mask(self, text, top_k=5):
        if not self.has_mlm_head:
            raise self._refuse("fill-mask")
        if not text or self.mask_token not in text:
            raise DemoError(f"put the mask token {self.mask_token} in the sentence, e.g. `The cat sat on the {self.mask_token}.`")
        encoding = self.tokenizer.encode(text)
        mask_id = self.tokenizer.token_to_id(self.mask_token)
        positions = [i for i, token in enumerate(encoding.ids) if token == mask_id]
        if not positions:
            raise DemoError(f"the mask token {self.mask_token} fell beyond the {self.max_length} tokens this model reads")
        logits, _ = self._run([encoding])
        probabilities = self._softmax(logits[0, positions[0]].astype("float64"))
        best = self.np.argsort(-probabilities)[: int(top_k)]
        return [(self.tokenizer.decode([int(i)]).strip(), float(probabilities[i])) for i in best]

    def similarity(self, sentences):
        if self.task not in ("feature-extraction", "sentence-embedding"):
            raise self._refuse("sentence similarity")
        sentences = [s.strip() for s in sentences if s.strip()]
        if len(sentences) < 2:
            raise DemoError("give at least two sentences, one per line")
        if len(sentences) > MAX_SENTENCES:
            raise DemoError(f"give at most {MAX_SENTENCES} sentences")
        output, mask = self._run(self.tokenizer.encode_batch(sentences))
        if self.task == "sentence-embedding":  # the export pools (and normalises) itself: one vector per sentence
            pooled = output
        else:
            mask = mask[..., None].astype(output.dtype)
            pooled = (output * mask).sum(1) / mask.sum(1)
        pooled = pooled / self.np.linalg.norm(pooled, axis=-1, keepdims=True)
        return sentences, (pooled @ pooled.T).tolist()

    def classify(self, text, text_pair=None):
        if not self.has_classifier:
            raise self._refuse("classification")
        if not text or not text.strip():
            raise DemoError("type a sentence to classify")
        pair = text_pair if text_pair and text_pair.strip() else None
        logits, _ = self._run([self.tokenizer.encode(text, pair)])
        names = {int(k): v for k, v in (self.config.get("id2label") or {}).items()}
        if logits.shape[-1] == 1:
            return [(names.get(0, "score"), float(logits[0, 0]))]
        probabilities = self._softmax(logits[0].astype("float64")).tolist()
        return sorted(((names.get(i, f"LABEL_{i}"), p) for i, p in enumerate(probabilities)), key=lambda x: -x[1])


@lru_cache(maxsize=4)
def get_demo(model_name_or_path, onnx=None, backend="auto"):
    return OnnxDemo(model_name_or_path, onnx, backend) if onnx else Demo(model_name_or_path)


def demo_of(source):
    """The page's model: `source` is a model name, or (name, onnx[, backend]) for an export."""
    return get_demo(*source) if isinstance(source, tuple) else get_demo(source)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def message(text):
    return f"**Error:** {text}"


def shown(function):
    """Run one of the page's actions; a DemoError becomes a message on the page."""

    def wrapper(model_name_or_path, *inputs):
        try:
            return function(demo_of(model_name_or_path), *inputs)
        except DemoError as error:
            return message(error)

    return wrapper


@shown
def fill_mask_page(demo, text, top_k):
    rows = [(rank, f"`{token}`".replace("|", "\\|"), f"{p:.2%}") for rank, (token, p) in enumerate(demo.fill_mask(text, top_k), start=1)]
    return table(("rank", "token", "probability"), rows)


@shown
def similarity_page(demo, text):
    sentences, matrix = demo.similarity(text.splitlines())
    header = ("", *[f"{i + 1}" for i in range(len(sentences))])
    rows = [(f"{i + 1}. {s}", *[f"{v:.3f}" for v in row]) for i, (s, row) in enumerate(zip(sentences, matrix))]
    return table(header, rows)


@shown
def classify_page(demo, text, text_pair):
    scores = demo.classify(text, text_pair)
    if len(scores) == 1:
        return table(("output", "value"), [(name, f"{value:.4f}") for name, value in scores])
    return table(("label", "probability"), [(name, f"{p:.2%}") for name, p in scores])


def status_page(model_name_or_path):
    try:
        return demo_of(model_name_or_path).describe()
    except DemoError as error:
        return message(error)


def build_app(model_name_or_path, onnx=None, backend="auto"):
    import gradio as gr

    model = (str(model_name_or_path), str(onnx), backend) if onnx else str(model_name_or_path)
    try:
        mask = demo_of(model).mask_token
    except DemoError:
        mask = "[MASK]"
    with gr.Blocks(title="small-encoders demo") as app:
        gr.Markdown("# small-encoders demo")
        name = gr.State(model)
        gr.Markdown(status_page(model), elem_id="model-status")
        with gr.Tab("Fill-mask"):
            text = gr.Textbox(label=f"A sentence with the mask token {mask}", value=f"The capital of France is {mask}.",
                              elem_id="fill-mask-input")
            top_k = gr.Slider(1, 20, value=5, step=1, label="top k")
            button = gr.Button("Predict", variant="primary", elem_id="fill-mask-button")
            output = gr.Markdown(elem_id="fill-mask-output")
            button.click(fill_mask_page, [name, text, top_k], output)
            text.submit(fill_mask_page, [name, text, top_k], output)
        with gr.Tab("Sentence similarity"):
            sentences = gr.Textbox(label="Two or more sentences, one per line", lines=4, elem_id="similarity-input",
                                   value="A man is playing a guitar.\nSomeone plays an instrument.\nThe stock market fell today.")
            button = gr.Button("Compare", variant="primary", elem_id="similarity-button")
            output = gr.Markdown(elem_id="similarity-output")
            button.click(similarity_page, [name, sentences], output)
        with gr.Tab("Classification"):
            first = gr.Textbox(label="Sentence", elem_id="classify-input")
            second = gr.Textbox(label="Second sentence (pair tasks such as RTE, MRPC, STS-B; leave empty otherwise)",
                                elem_id="classify-pair")
            button = gr.Button("Classify", variant="primary", elem_id="classify-button")
            output = gr.Markdown(elem_id="classify-output")
            button.click(classify_page, [name, first, second], output)
    return app


def space_setting(name):
    """A setting of the Space written by model_cards/publish.py (its space_config.json), else None."""
    return json.loads(SPACE_CONFIG.read_text()).get(name) if SPACE_CONFIG.is_file() else None


def default_model():
    return os.environ.get("MODEL_NAME_OR_PATH") or space_setting("model_name_or_path")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", default=default_model(),
                        help="model folder or Hub id (default: $MODEL_NAME_OR_PATH, or the Space's space_config.json)")
    parser.add_argument("--onnx", default=space_setting("onnx"), metavar="DIR",
                        help="serve this export (deploy/export.py's folder) with onnxruntime or OpenVINO instead of PyTorch")
    parser.add_argument("--backend", default=space_setting("backend") or "auto",
                        help="with --onnx: the export's artefact to serve (deploy/serving.py's names; default auto: "
                             "the fastest the export measured that the installed runtimes can run)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args(argv)
    if args.onnx and not args.model_name_or_path:
        args.model_name_or_path = args.onnx  # a local export: its folder names the page
    if not args.model_name_or_path:
        print("error: name a model with --model_name_or_path DIR_OR_HUB_ID", file=sys.stderr)
        return 1
    if not 0 < args.port < 65536:
        print(f"error: --port must be between 1 and 65535, got {args.port}", file=sys.stderr)
        return 1
    problem = None if args.onnx else source_problem(args.model_name_or_path)
    if problem:  # a missing path, or a Hub id without network: nothing to show, so no page (one line, at once)
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        print(get_demo(args.model_name_or_path, args.onnx, args.backend).describe().replace("**", "").replace("`", ""))
    except DemoError as error:  # a model that cannot load: no page to serve (a Space shows the message on its page)
        print(f"error: {error}", file=sys.stderr)
        return 1
    build_app(args.model_name_or_path, args.onnx, args.backend).launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
