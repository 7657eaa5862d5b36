"""The checkpoint file format: atomic writes, refused when partial, checked on load.

Two formats, both `torch.save` archives loaded with `weights_only=True`:
- training state ("crossnet-dist/train"): networks, optimisers, pools, position, config; written and
  read by training/checkpoint.py;
- serving ("crossnet-dist/serving"): only the modules translation needs, plus the config; written and
  read by checkpoints/translator.py (serving, translation, evaluation and export take it from there).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

TRAIN_FORMAT = "crossnet-dist/train"
SERVING_FORMAT = "crossnet-dist/serving"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt or of the wrong kind; the message names its path."""


def atomic_save(payload: dict[str, Any], path: str | Path) -> Path:
    """Writes to a temporary file in the same folder, fsyncs, then renames over `path`, so a
    crash never leaves a partial file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checked(path: str | Path, expected_format: str | tuple[str, ...], map_location="cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError/EOFError/UnpicklingError for damaged archives
        first_line = (str(err).splitlines() or [""])[0]
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: {first_line})") from None
    formats = (expected_format,) if isinstance(expected_format, str) else expected_format
    found = payload.get("format") if isinstance(payload, dict) else None
    if found not in formats:
        raise CheckpointError(f"checkpoint {path} has format {found!r}, expected {' or '.join(formats)}")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has version {payload.get('version')!r}, expected {FORMAT_VERSION}")
    return payload
