"""Each method's options (`model.<method>`), loss weights (`loss.<method>`) and their checks.

They are registered here, one module per method, and the config schema is assembled from this
registry (crossnet_dist/config.py keeps only the shared sections). They live apart from the
networks so that loading a config never imports torch. Each method class names its entry
(`TranslationMethod.options`), and a test checks the two registries agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from crossnet_dist.methods.options import cascaded, crossnet, cyclegan, unit, xgan

# fail(key, why) raises the ConfigError naming `key` (config_checks.validate passes it)
Fail = Callable[[str, str], None]


@dataclass(frozen=True)
class MethodOptions:
    name: str
    weights: type  # the loss.<name> dataclass
    options: type | None = None  # the model.<name> dataclass, for methods with options of their own
    validate: Callable[..., None] | None = None  # validate(cfg, fail): run for every config (the keys are typed)


METHOD_OPTIONS: dict[str, MethodOptions] = {
    entry.name: entry
    for entry in (
        MethodOptions("crossnet", crossnet.CrossNetLossWeights),
        MethodOptions("cyclegan", cyclegan.CycleGANLossWeights),
        MethodOptions("unit", unit.UNITLossWeights, unit.UNITOptions, unit.validate),
        MethodOptions("xgan", xgan.XGANLossWeights, xgan.XGANOptions, xgan.validate),
        MethodOptions("cascaded", cascaded.CascadedLossWeights, cascaded.CascadedOptions, cascaded.validate),
    )
}
