"""Publish a trained model folder to the Hugging Face Hub, or write exactly what would be uploaded.

    python model_cards/publish.py --model_dir runs/miniroberta-wikitext2 --repo_id you/miniroberta --dry_run out/upload
    python model_cards/publish.py --model_dir runs/miniroberta-wikitext2 --repo_id you/miniroberta --private
    python model_cards/publish.py --model_dir runs/x/checkpoint-2000 --repo_id you/x --revision step-2000
    python model_cards/publish.py --model_dir runs/tuned-5m --repo_id you/tuned-5m --space_id you/tuned-5m-demo
    python model_cards/publish.py --model_dir runs/sst2-model --repo_id you/sst2 --onnx runs/sst2-onnx --dry_run out/upload

The upload holds the weights (safetensors), config, tokenizer, model card (README.md, generated if
the folder has none), loss_curve.png, recipe.yaml / results.json / training_log.json, the
sentence-transformers files, and for the SmallEncoder family its configuration/modeling code. No
optimizer state, no pickles. The token comes from HF_TOKEN or the login cache (`hf auth login`),
read by huggingface_hub itself: this script never prints or writes it.

`--space_id` also writes a Gradio Space that serves the model with `demo/app.py` (fill-mask, sentence
similarity, classification for a fine-tuned folder): app.py, requirements.txt, space_config.json (the
model's repo id) and a README.md with the Space's metadata. With `--dry_run DIR` they go to `DIR-space`.
`--onnx DIR` (deploy/export.py's folder of this model) uploads the export under onnx/ with a card section on
running it with onnxruntime alone; with `--space_id` too, the Space serves that export (the int8 copy when there
is one) with onnxruntime and tokenizers, and installs no torch.
"""

import argparse
import shutil
import sys
from pathlib import Path

from small_encoders.core.errors import ArgumentParser, UserError, entry_point
from small_encoders.core.run_folder import EMBEDDING_RESULTS, RunFolder

REPO_ROOT = Path(__file__).resolve().parents[1]

UPLOAD_FILES = (
    "config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "README.md", "loss_curve.png",
    *RunFolder.PUBLISHED, "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
    EMBEDDING_RESULTS,
    "configuration_small_encoder.py", "modeling_small_encoder.py",
)
UPLOAD_DIRS = ("1_Pooling", "2_Normalize")  # sentence-transformers' pooling and normalisation modules
SPACE_REQUIREMENTS = ("torch", "transformers>=5.17", "gradio>=5.0", "safetensors")
# A Space serving the model's ONNX export (--onnx): no torch, no transformers, no trust_remote_code.
ONNX_SPACE_REQUIREMENTS = ("onnxruntime", "tokenizers", "numpy", "huggingface_hub", "gradio>=5.0")
ONNX_FOLDER = "onnx"  # where --onnx puts the export in the model's repository


def space_runtime(onnx_dir):
    """What a Space serving the export of `onnx_dir` installs beside onnxruntime: "openvino" when the export's default
    backend is OpenVINO's, else "onnxruntime" (False without an export)."""
    import json

    if not onnx_dir:
        return False
    default = (json.loads((Path(onnx_dir) / "export.json").read_text()).get("serving") or {}).get("default") or ""
    return "openvino" if default.startswith("openvino") else "onnxruntime"


def stage_space(model_repo_id, space_id, target, onnx=False):
    """Write the Space that serves `model_repo_id` with demo/app.py into `target` (with `onnx`, from the export under
    onnx/ in the model's repository, with onnxruntime, and OpenVINO when `onnx` is "openvino"); returns the relative
    paths."""
    import json

    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise UserError(f"{target} is not empty; give a new folder for the Space")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO_ROOT / "demo" / "app.py", target / "app.py")
    config = {"model_name_or_path": model_repo_id, **({"onnx": ONNX_FOLDER} if onnx else {})}
    (target / "space_config.json").write_text(json.dumps(config))
    requirements = ONNX_SPACE_REQUIREMENTS + (("openvino",) if onnx == "openvino" else ()) if onnx else SPACE_REQUIREMENTS
    (target / "requirements.txt").write_text("\n".join(requirements) + "\n")
    title = space_id.split("/")[-1]
    (target / "README.md").write_text(
        f"---\ntitle: {title}\nsdk: gradio\napp_file: app.py\nmodels:\n- {model_repo_id}\n---\n\n"
        f"# {title}\n\nFill-mask, sentence similarity and (for a fine-tuned model) classification with "
        f"[{model_repo_id}](https://huggingface.co/{model_repo_id}), served by `demo/app.py` of small-encoders"
        f"{' from its ONNX export with ONNX Runtime' if onnx else ''}.\n"
    )
    return sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())


def onnx_export_of(model_dir, onnx_dir):
    """The export.json record of deploy/export.py's folder `onnx_dir`, checked to be an export of `model_dir`."""
    import json

    from small_encoders.deploy.export import EXPORT_FILE, ONNX_FILE, weights_digest

    onnx_dir = Path(onnx_dir)
    record_path = onnx_dir / EXPORT_FILE
    if not onnx_dir.is_dir() or not (onnx_dir / ONNX_FILE).is_file() or not record_path.is_file():
        raise UserError(f"--onnx {onnx_dir}: not an export folder (make one with deploy/export.py --model_dir "
                        f"{model_dir} --output_dir {onnx_dir})")

    try:
        record = json.loads(record_path.read_text())
        source, digest = record["source"], record["weights_sha256"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"--onnx {record_path}: not written by deploy/export.py (export it again)") from None
    if digest != weights_digest(model_dir):
        raise UserError(f"--onnx {onnx_dir} was exported from other weights ({source}) than --model_dir {model_dir}'s; "
                        f"export this model (deploy/export.py --model_dir {model_dir})")
    for name in record.get("files", {}):
        if not (onnx_dir / name).is_file():
            raise UserError(f"--onnx {onnx_dir}: {name} is missing (export it again)")
    return record


def stage(model_dir, target, result_files=(), repo_id=None, onnx_dir=None):
    """Copy what would be uploaded into `target` (an empty or new folder) and return the relative paths; `onnx_dir`
    (a deploy/export.py folder of this model) goes under onnx/ and the card says how to run it."""
    from small_encoders.model_cards.generate import generate

    model_dir, target = Path(model_dir), Path(target)
    if not (model_dir / "config.json").exists() or not (model_dir / "model.safetensors").exists():
        raise UserError(f"{model_dir} is not a saved model folder (needs config.json and model.safetensors)")
    from small_encoders.core.hub import check_weights

    check_weights(model_dir, "--model_dir")  # a damaged weights file is never uploaded
    onnx = onnx_export_of(model_dir, onnx_dir) if onnx_dir else None
    if target.exists() and any(target.iterdir()):
        raise UserError(f"{target} is not empty; give a new folder for the upload")
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        for name in UPLOAD_FILES:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, target / name)
        for name in UPLOAD_DIRS:
            if (model_dir / name).is_dir():
                shutil.copytree(model_dir / name, target / name)
        if onnx:
            (target / ONNX_FOLDER).mkdir()
            for name in [*onnx["files"], "export.json"]:  # the model files the record lists, and the record
                (target / ONNX_FOLDER / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(onnx_dir) / name, target / ONNX_FOLDER / name)
        if result_files or onnx or not (target / "README.md").exists():
            generate(model_dir, result_files, output_dir=target, model_name=repo_id, onnx=onnx)
    except BaseException:  # nothing half-staged is left behind (a dry run's folder, or the upload's)
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for child in target.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())


def publish(model_dir, repo_id, private=True, revision=None, result_files=(), commit_message=None, space_id=None,
            onnx_dir=None):
    """Create the repo (and branch) if needed and upload the staged folder; returns the commit URL (and the
    Space's, with `space_id`)."""
    import tempfile

    from huggingface_hub import HfApi

    api = HfApi()
    with tempfile.TemporaryDirectory() as staging:
        stage(model_dir, Path(staging) / "upload", result_files, repo_id, onnx_dir)
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(folder_path=str(Path(staging) / "upload"), repo_id=repo_id, revision=revision,
                                 commit_message=commit_message or f"Upload {Path(model_dir).name}")
        urls = [getattr(info, "commit_url", str(info))]
        if space_id:
            stage_space(repo_id, space_id, Path(staging) / "space", onnx=space_runtime(onnx_dir))
            api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
            space = api.upload_folder(folder_path=str(Path(staging) / "space"), repo_id=space_id, repo_type="space",
                                      commit_message=f"Demo of {repo_id}")
            urls.append(getattr(space, "commit_url", str(space)))
    return ", ".join(urls)


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--repo_id", required=True, help="user/name on the Hub")
    parser.add_argument("--results", nargs="*", default=[], help="evaluation JSON files from eval/ for the card")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", default=None, help="branch for an intermediate checkpoint (created if missing)")
    parser.add_argument("--dry_run", default=None, metavar="DIR", help="write the exact upload into DIR and list it; upload nothing")
    parser.add_argument("--space_id", default=None, help="also publish a Gradio Space (user/name) serving the model with demo/app.py "
                             "(with --onnx: serving the ONNX export with onnxruntime, no torch in the Space)")
    parser.add_argument("--onnx", default=None, metavar="DIR",
                        help="also upload this model's ONNX export (deploy/export.py's folder) under onnx/, with a card "
                             "section on running it with onnxruntime alone")
    args = parser.parse_args(argv)
    if args.dry_run:
        files = stage(args.model_dir, args.dry_run, args.results, args.repo_id, args.onnx)
        print(f"dry run: {len(files)} files that would be uploaded to {args.repo_id}"
              f"{'@' + args.revision if args.revision else ''} ({'private' if args.private else 'public'}):")
        for name in files:
            print(f"  {name}  ({(Path(args.dry_run) / name).stat().st_size:,} bytes)")
        if args.space_id:
            space_dir = Path(str(Path(args.dry_run)) + "-space")
            files = stage_space(args.repo_id, args.space_id, space_dir, onnx=space_runtime(args.onnx))
            print(f"and the Space {args.space_id} (in {space_dir}): {', '.join(files)}")
        return 0
    try:
        url = publish(args.model_dir, args.repo_id, args.private, args.revision, args.results, space_id=args.space_id,
                      onnx_dir=args.onnx)
    except UserError:
        raise
    except Exception as error:  # network and auth errors from the Hub client, without the token
        raise UserError(f"upload to {args.repo_id} failed ({type(error).__name__}); check the network and "
                        f"`hf auth login` or HF_TOKEN, or use --dry_run DIR") from None
    print(f"uploaded: {url}")


if __name__ == "__main__":
    sys.exit(main())
