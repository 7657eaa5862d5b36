"""Evaluation options: a structured `eval:` section (YAML file and/or dotted overrides) and CLI flags.

    eval:
      metrics: [cycle, efflite0]      # groups: cycle, efflite0, inception
      inception_weights: /models/pt_inception-2015-12-05-6726825d.pth   # adds "inception"
      cache_dir: ~/.cache/crossnet/features
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from crossnet_dist.config_errors import ConfigError

METRIC_GROUPS = ("cycle", "efflite0", "inception", "paired")
DEFAULT_CACHE_DIR = "~/.cache/crossnet/features"


@dataclass
class EvalConfig:
    # cycle: cycle L1 (+ latent cross-identity L1 for CrossNet training checkpoints);
    # efflite0: fd_efflite0 / kd_efflite0; inception: fid / kid (needs inception_weights);
    # paired: paired_l1 / paired_ssim against the true counterpart, where the split has pairs.
    metrics: list[str] = field(default_factory=lambda: ["cycle", "efflite0", "paired"])
    pairs: str = "auto"  # auto: testA/<name> and testB/<name> are a pair | none: no paired metrics | require: fail without pairs
    inception_weights: Optional[str] = None  # set -> "inception" is added to metrics
    cache_dir: Optional[str] = DEFAULT_CACHE_DIR  # null = no feature cache
    device: str = "auto"
    batch_size: int = 16
    max_images: int = 0  # per domain; 0 = the whole split
    samples: int = 8  # sample rows per direction in the HTML report
    kid_subset_size: int = 1000
    kid_subsets: int = 100


def load_eval_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Defaults <- the `eval:` section of a YAML file (or the whole file) <- `key=value` overrides."""
    cfg = OmegaConf.structured(EvalConfig)
    try:
        if path is not None:
            if not Path(path).is_file():
                raise ConfigError(f"eval config file not found: {path}")
            loaded = OmegaConf.load(path)
            cfg = OmegaConf.merge(cfg, loaded.get("eval", loaded))
        bad = [item for item in overrides if "=" not in item]
        if bad:
            raise ConfigError(f"override {bad[0]!r} is not of the form key=value")
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([o.removeprefix("eval.") for o in overrides]))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        raise ConfigError(f"config key 'eval.{key}': {str(err).splitlines()[0]}" if key else str(err)) from None
    validate_eval_config(cfg)
    return cfg


def validate_eval_config(cfg: DictConfig) -> None:
    for name in cfg.metrics:
        if name not in METRIC_GROUPS:
            raise ConfigError(f"config key 'eval.metrics': unknown metric group {name!r}; known: {', '.join(METRIC_GROUPS)}")
    from crossnet_dist.evaluation.paired import PAIRS_MODES

    if cfg.pairs not in PAIRS_MODES:
        raise ConfigError(f"config key 'eval.pairs': must be one of {', '.join(PAIRS_MODES)} (got {cfg.pairs!r})")
    for key in ("batch_size", "kid_subset_size", "kid_subsets"):
        if cfg[key] <= 0:
            raise ConfigError(f"config key 'eval.{key}': must be > 0 (got {cfg[key]!r})")
    for key in ("max_images", "samples"):
        if cfg[key] < 0:
            raise ConfigError(f"config key 'eval.{key}': must be >= 0 (got {cfg[key]!r})")


def metric_groups(cfg: DictConfig) -> list[str]:
    groups = list(cfg.metrics)
    if cfg.inception_weights and "inception" not in groups:
        groups.append("inception")
    return groups


def groups_for_metric(metric: str) -> list[str]:
    """The group that computes a metric name such as 'fd_efflite0' or 'fid_a2b'."""
    if "efflite0" in metric:
        return ["efflite0"]
    if metric.startswith(("fid", "kid")):
        return ["inception"]
    if metric.startswith(("cycle", "cross_identity")):
        return ["cycle"]
    if metric.startswith("paired_"):
        return ["paired"]
    raise ConfigError(f"unknown metric {metric!r}: expected fd_efflite0, kd_efflite0, fid, kid, cycle_l1, cross_identity_l1, "
                      "paired_l1 or paired_ssim (optionally _a2b/_b2a)")
