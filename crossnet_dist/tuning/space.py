"""The searched part of a campaign: `tune.space` (config key -> range or values) as a Ray Tune
param space, checked against the config before any trial starts, and applied to a trial's config (config.config_with).

An empty `tune.space` searches the five CrossNet loss weights of eq. 5 (DEFAULT_SPACE): ranges
around the paper's defaults (1, 3, 3, 6, 6) that include 0 (the Fig. 5 ablation) for every term
except the GAN one. Any other config key may be searched too (optim.lr is the usual extra).
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

from crossnet_dist.config_errors import ConfigError

DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "loss.crossnet.gan": {"type": "loguniform", "low": 0.3, "high": 3.0},
    "loss.crossnet.identity": {"type": "uniform", "low": 0.0, "high": 6.0},
    "loss.crossnet.cross_translation": {"type": "uniform", "low": 0.0, "high": 6.0},
    "loss.crossnet.cross_identity": {"type": "uniform", "low": 0.0, "high": 12.0},
    "loss.crossnet.latent_cycle": {"type": "uniform", "low": 0.0, "high": 12.0},
}


def space_specs(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """{config key: spec dict} of the campaign (DEFAULT_SPACE when tune.space is empty)."""
    specs = {k: {f: v for f, v in OmegaConf.to_container(s).items() if v is not None} for k, s in cfg.tune.space.items()}
    return specs or {k: dict(v) for k, v in DEFAULT_SPACE.items()}


def _plain(value: Any) -> Any:
    """numpy scalars (from samplers) as Python numbers, so configs and JSON take them."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    return value


def tune_space(specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The Ray Tune param space: {config key: tune.uniform(...) / tune.grid_search([...]) ...}."""
    from ray import tune

    space: dict[str, Any] = {}
    for key, spec in specs.items():
        kind = spec["type"]
        if kind == "uniform":
            space[key] = tune.uniform(spec["low"], spec["high"])
        elif kind == "loguniform":
            space[key] = tune.loguniform(spec["low"], spec["high"])
        elif kind == "quniform":
            space[key] = tune.quniform(spec["low"], spec["high"], spec["q"])
        elif kind == "randint":
            space[key] = tune.randint(int(spec["low"]), int(spec["high"]))
        elif kind == "choice":
            space[key] = tune.choice(list(spec["values"]))
        elif kind == "grid":
            space[key] = tune.grid_search(list(spec["values"]))
        else:  # validated in config.py
            raise ConfigError(f"config key 'tune.space.{key}.type': unknown type {kind!r}")
    return space


def pbt_mutations(specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """PBT's hyperparam_mutations: every searched key but grid entries (a grid is a fixed axis of
    the population, not something to explore). Ranges resample from their distribution; choices
    move to a neighbouring value."""
    space = tune_space({k: s for k, s in specs.items() if s["type"] != "grid"})
    return {k: (list(specs[k]["values"]) if specs[k]["type"] == "choice" else v) for k, v in space.items()}


class ClipToSpace:
    """PBT's custom_explore_fn: a perturbed value (x 1.2 or x 0.8) is clipped back into its
    searched range, so PBT explores only what the campaign declared."""

    def __init__(self, specs: dict[str, dict[str, Any]]):
        self.bounds = {}
        for key, spec in specs.items():
            if spec["type"] in ("uniform", "loguniform", "quniform"):
                self.bounds[key] = (float(spec["low"]), float(spec["high"]))
            elif spec["type"] == "randint":
                self.bounds[key] = (int(spec["low"]), int(spec["high"]) - 1)

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for key, (low, high) in self.bounds.items():
            if key in config:
                value = min(max(_plain(config[key]), low), high)
                config[key] = int(round(value)) if isinstance(low, int) else value
        return config


def trial_count(specs: dict[str, dict[str, Any]], num_samples: int) -> int:
    grid = math.prod(len(s["values"]) for s in specs.values() if s["type"] == "grid")
    return num_samples * grid
