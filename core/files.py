"""Output files written whole or not at all."""

import os
from pathlib import Path


def write_atomic(path, data):
    """Write text or bytes through a temporary file and rename, so a crash never leaves half a file; the folder it goes
    in is made where missing (`--output_json runs/new-folder/x.json`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    if isinstance(data, bytes):
        temporary.write_bytes(data)
    else:
        temporary.write_text(data, encoding="utf-8")
    os.replace(temporary, path)
