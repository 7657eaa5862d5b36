"""The methods by name: `build_method(cfg)` picks the plug-in named by `cfg.method`."""

from __future__ import annotations

from crossnet_dist.methods.base import TranslationMethod
from crossnet_dist.methods.cascaded import Cascaded
from crossnet_dist.methods.crossnet import CrossNet
from crossnet_dist.methods.cyclegan import CycleGAN
from crossnet_dist.methods.unit import UNIT
from crossnet_dist.methods.xgan import XGAN

METHODS: dict[str, type[TranslationMethod]] = {m.name: m for m in (CrossNet, CycleGAN, UNIT, XGAN, Cascaded)}


def build_method(cfg, inference: bool = False) -> TranslationMethod:
    """Builds the method named by cfg.method with its own loss weights (cfg.loss.<method>).

    With inference=True only the modules that translation uses are built.
    """
    try:
        method_cls = METHODS[cfg.method]
    except KeyError:
        raise ValueError(f"config key 'method': unknown method {cfg.method!r}; known: {sorted(METHODS)}") from None
    return method_cls(cfg.model, cfg.loss[cfg.method], inference=inference)
