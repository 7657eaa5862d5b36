"""Method registry: `build_method(cfg)` picks the plug-in named by `cfg.method`.

Methods: crossnet, cyclegan, unit, xgan, cascaded. Each owns its paper's optimiser values
(`optim_defaults`: crossnet/cyclegan Adam 2e-4 (0.5, 0.999) with a pool of 50, unit 1e-4 (0.5, 0.999),
xgan 1e-4 (0.9, 0.999), cascaded 1e-4 (0.5, 0.999), no pool for the last three), which fill the
optim.* keys a config leaves unset. Its options and loss weights are in methods/options/.

The names below are imported on first use, so that `crossnet_dist.methods.options` (what the
config schema is built from) loads without torch.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "DIRECTIONS": "base", "StepOutput": "base", "TranslationMethod": "base", "check_direction": "base",
    "METHODS": "registry", "build_method": "registry",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = sorted(_HOMES)
