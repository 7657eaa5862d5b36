"""Checkpoint files: atomic writes, refused when partial, and the one-file serving export.

Two formats, both `torch.save` archives loaded with `weights_only=True`:
- training state ("crossnet-dist/train"): networks, optimisers, pools, position, config;
- serving ("crossnet-dist/serving"): only the modules translation needs, plus the config.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

TRAIN_FORMAT = "crossnet-dist/train"
SERVING_FORMAT = "crossnet-dist/serving"
FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step_(\d{8})\.pt$")


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


def step_checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.pt"


def list_step_checkpoints(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _STEP_FILE.match(p.name))


def prune_step_checkpoints(folder: str | Path, keep: int) -> None:
    if keep <= 0:
        return
    for old in list_step_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)


def serving_payload(method, config_container: dict[str, Any], step: int, ema=None) -> dict[str, Any]:
    """The serving export; with `ema` (a training.ema.TranslatorEMA) its averaged weights are the
    ones exported, and "ema" says so."""
    state = ema.translation_state_dict() if ema is not None else method.translation_state_dict()
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(f"refusing to export a translator with non-finite weights (in {', '.join(bad[:3])})")
    return {
        "format": SERVING_FORMAT,
        "version": FORMAT_VERSION,
        "method": method.name,
        "step": step,
        "config": config_container,
        "ema": ema is not None,
        "translation": {k: {n: t.detach().cpu() for n, t in sd.items()} for k, sd in state.items()},
    }


def load_translator(path: str | Path, device: str | torch.device = "cpu", facts: dict[str, Any] | None = None):
    """Loads a serving or training checkpoint as an inference-only method (E and D of both
    directions; a training checkpoint's EMA weights when it has them). Returns (method, config);
    `facts`, if given, receives the checkpoint's "step" and "ema" (whether the weights are averaged)."""
    from crossnet_dist.config import config_from_container
    from crossnet_dist.methods import build_method

    payload = load_checked(path, (SERVING_FORMAT, TRAIN_FORMAT))
    if facts is not None:
        facts.update(step=payload.get("step"), ema=bool(payload.get("ema")))
    cfg = config_from_container(payload["config"])
    method = build_method(cfg, inference=True)
    if payload["format"] == SERVING_FORMAT:
        state = payload["translation"]
    elif payload.get("ema"):  # a training checkpoint with averaged weights: those are the translator
        from crossnet_dist.training.ema import nest_by_module

        state = nest_by_module(payload["ema"]["shadow"])
    else:
        state = {name: _prefixed(payload["generators"], name) for name in method.translation_modules}
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(f"checkpoint {path} has non-finite weights (in {', '.join(bad[:3])}): the run diverged")
    try:
        method.load_translation_state_dict(state)
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} does not match its config: {str(err).splitlines()[0]}") from None
    return method.to(device).eval(), cfg


def non_finite_tensors(state: dict[str, dict[str, torch.Tensor]]) -> list[str]:
    """Names (module.tensor) of the floating-point tensors holding a NaN or an infinity."""
    return [f"{module}.{name}" for module, sd in state.items() for name, t in sd.items()
            if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())]


def _prefixed(state: dict[str, torch.Tensor], module: str) -> dict[str, torch.Tensor]:
    prefix = module + "."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
