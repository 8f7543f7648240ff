"""A local path or a Hub id? Decided before anything is downloaded, so a mistyped path or a machine without network
fails in a second with one line, not after a minute of download retries.

A name is a local path when it exists, or when it can only be one: it starts with ./, ../, / or ~, has more than one
slash, or its first part is a folder here (`runs/nosuch` while runs/ exists). Anything else (`roberta-base`,
`FacebookAI/roberta-base`) is a Hub id: without network (or with HF_HUB_OFFLINE=1) it is taken from the local Hub
cache when there (the process then stays offline, so nothing retries), and refused at once when not.
"""

import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from small_encoders.core.errors import UserError

TRUE = ("1", "true", "yes", "on")


def looks_local(name):
    text = str(name)
    if text in (".", "..") or text.startswith(("./", "../", "/", "~", ".\\", "..\\")):
        return True
    parts = text.split("/")
    if len(parts) > 2 or not all(parts):
        return True
    return len(parts) == 2 and Path(parts[0]).is_dir()


def offline():
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in TRUE


@lru_cache(maxsize=1)
def hub_reachable(timeout=3.0):
    """Whether a TCP connection to the Hub opens (False at once under HF_HUB_OFFLINE=1)."""
    if offline():
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def stay_offline():
    """From here on this process reads the Hub cache only (no request, so no retries)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True


AGAIN = "copy or save the model again"


def check_weights(folder, flag, way_out=AGAIN):
    """Open every safetensors file of a model folder (its header and size, not its tensors: milliseconds)."""
    from safetensors import safe_open

    for file in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt") as handle:
                handle.keys()
        except Exception as error:  # safetensors raises its own error type, and OSError for unreadable files
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"{flag} {folder}: {file.name} is damaged or incomplete ({reason}); {way_out}") from None


def check_model_folder(folder, flag, way_out=AGAIN):
    """A local model folder holds a readable config.json naming its model_type, JSON files that parse (the tokenizer's
    among them), and weight files that open; else one error naming the file (no loader traceback)."""
    import json

    folder = Path(folder)
    config = folder / "config.json"
    if not config.is_file():
        raise UserError(f"{flag} {folder}: not a saved model folder (no config.json in it)")
    for path in sorted(folder.glob("*.json")):
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, OSError) as error:
            raise UserError(f"{flag} {folder}: {path.name} is damaged or incomplete ({str(error).splitlines()[0]}); "
                            f"{way_out}") from None
        if path == config and not (isinstance(content, dict) and content.get("model_type")):
            raise UserError(f"{flag} {folder}: config.json names no model_type; it is not a transformers model's config")
    check_weights(folder, flag, way_out)


def check_source(name, flag, filename="config.json"):
    """Refuse, in one line naming `flag`, a name that is neither a local path nor a Hub id this machine can read. A
    local model folder (filename config.json) is also checked whole (check_model_folder): a damaged or truncated file,
    or an empty folder, is refused here, by name, instead of ending the program with the loader's traceback."""
    path = Path(str(name)).expanduser()
    if path.exists():
        if filename == "config.json" and path.is_dir():
            check_model_folder(path, flag)
        return
    if looks_local(name):
        raise UserError(f"{flag} {name}: no such file or folder")
    if hub_reachable():
        return
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(str(name), filename), str):
        stay_offline()
        return
    raise UserError(f"{flag} {name}: not a local folder, and not in the local Hub cache while the Hub cannot be "
                    f"reached from here (no network{' or HF_HUB_OFFLINE=1' if offline() else ''}); give a local folder")
