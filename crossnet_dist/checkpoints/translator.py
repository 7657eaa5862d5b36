"""The serving export (format "crossnet-dist/serving"): its writer and its reader, beside each other.

`serving_payload` is what a trainer writes as generator.pt (the translation modules, the config,
the step, whether the weights are the EMA's); `load_translator` loads that, or a training
checkpoint, as an inference-only method. Serving, offline translation, evaluation and export read
translators here; the file format itself (atomic writes, checked loads) is checkpoints/files.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from crossnet_dist.checkpoints.files import (
    FORMAT_VERSION,
    SERVING_FORMAT,
    TRAIN_FORMAT,
    CheckpointError,
    load_checked,
)


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
