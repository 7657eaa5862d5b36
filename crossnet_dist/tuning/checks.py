"""Every check of a Tune campaign, in one place:
- `validate_tune_section`: the `tune:` section's own values, run with every config at load time;
- `check_space`: each searched key exists as a value, and each value a trial can get is valid there;
- `check_campaign`: the rules between the campaign and the rest of the config (trial length, PBT's
  interval, the metric's direction);
- `check_resources`: one trial fits the cluster's CPUs.
Each error is a ConfigError naming the key.
"""

from __future__ import annotations

from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from crossnet_dist.config_errors import ConfigError
from crossnet_dist.tuning.space import space_specs

# config.config_with, passed in: it validates whole configs, and this module is part of that validation
TrialConfig = Callable[[dict[str, Any], dict[str, Any]], DictConfig]
_MISSING = object()

TUNE_SCHEDULERS = ("asha", "pbt", "fifo")
TUNE_SEARCHERS = ("random", "optuna")
TUNE_PARAM_TYPES = ("uniform", "loguniform", "quniform", "randint", "choice", "grid")


def _validate_pbt(cfg: DictConfig, fail) -> None:
    t, p = cfg.tune, cfg.tune.pbt
    for key in ("perturbation_interval", "burn_in"):
        if p[key] < 0:
            fail(f"tune.pbt.{key}", "must be >= 0")
    if p.perturbation_interval % cfg.dist.checkpoint_every:
        fail("tune.pbt.perturbation_interval",
             f"must be a multiple of dist.checkpoint_every ({cfg.dist.checkpoint_every}): trials are compared "
             "and cloned at checkpoints")
    if not 0 < p.quantile_fraction <= 0.5:
        fail("tune.pbt.quantile_fraction", "must be in (0, 0.5]")
    if not 0 <= p.resample_probability <= 1:
        fail("tune.pbt.resample_probability", "must be in [0, 1]")
    if len(p.perturbation_factors) != 2 or not all(f > 0 for f in p.perturbation_factors):
        fail("tune.pbt.perturbation_factors", "must be two factors > 0, e.g. [1.2, 0.8]")
    if t.scheduler == "pbt" and t.searcher != "random":
        fail("tune.searcher", "tune.scheduler=pbt explores by itself: use searcher=random")


def validate_tune_section(cfg: DictConfig, fail) -> None:
    """The `tune:` section's own values, checked with every config at load time (config_checks.validate)."""
    t = cfg.tune
    if t.scheduler not in TUNE_SCHEDULERS:
        fail("tune.scheduler", f"must be one of {', '.join(TUNE_SCHEDULERS)}")
    if t.searcher not in TUNE_SEARCHERS:
        fail("tune.searcher", f"must be one of {', '.join(TUNE_SEARCHERS)}")
    if t.mode not in ("min", "max"):
        fail("tune.mode", "must be min or max")
    if t.split not in ("val", "test"):
        fail("tune.split", "must be val (the validation split: `crossnet data split ROOT` makes it) or test")
    if "/" in t.name or t.name in (".", ".."):
        fail("tune.name", "must be a plain folder name")
    for key in ("num_samples", "max_concurrent_trials"):
        if t[key] < 1:
            fail(f"tune.{key}", "must be >= 1")
    if not t.time_budget_s > 0:
        fail("tune.time_budget_s", "must be > 0 (a campaign always has a time budget)")
    if not t.trial_cpus >= 0:
        fail("tune.trial_cpus", "must be >= 0")
    for key in ("eval_max_images", "asha.grace_period", "asha.max_t"):
        if OmegaConf.select(t, key) < 0:
            fail(f"tune.{key}", "must be >= 0")
    if not t.asha.reduction_factor > 1:
        fail("tune.asha.reduction_factor", "must be > 1")
    if t.asha.brackets < 1:
        fail("tune.asha.brackets", "must be >= 1")
    _validate_pbt(cfg, fail)
    for key, spec in t.space.items():
        where = f"tune.space.{key}"

        def fail(field: str, why: str, spec=spec) -> None:  # noqa: F811 (dotted space keys defeat select)
            raise ConfigError(f"config key '{field}': {why} (got {spec[field.rsplit('.', 1)[1]]!r})")

        if spec.type not in TUNE_PARAM_TYPES:
            fail(f"{where}.type", f"must be one of {', '.join(TUNE_PARAM_TYPES)}")
        if t.searcher == "optuna" and spec.type == "grid":
            fail(f"{where}.type", "tune.searcher=optuna samples every key: use choice instead of grid")
        if spec.type in ("choice", "grid"):
            if not spec["values"]:  # (spec.values is DictConfig.values)
                fail(f"{where}.values", f"a {spec.type} needs a non-empty list of values")
            continue
        if spec.low is None or spec.high is None:
            fail(f"{where}.low", f"a {spec.type} range needs low and high")
        if not spec.low < spec.high:
            fail(f"{where}.high", f"must be > low ({spec.low})")
        if spec.type == "loguniform" and not spec.low > 0:
            fail(f"{where}.low", "a loguniform range needs low > 0")
        if spec.type == "quniform" and not (spec.q or 0) > 0:
            fail(f"{where}.q", "a quniform range needs a step q > 0")


def check_space(cfg: DictConfig, trial_config: TrialConfig) -> dict[str, dict[str, Any]]:
    """Every searched key exists as a config value (not a section), and every value a trial can get
    (the bounds of a range, each value of a choice/grid) passes the config's own validation; the
    error names `tune.space.<key>`."""
    specs = space_specs(cfg)
    base = OmegaConf.to_container(cfg, resolve=True)
    for key, spec in specs.items():
        where = f"config key 'tune.space.{key}'"
        current = OmegaConf.select(cfg, key, default=_MISSING)
        if current is _MISSING:
            raise ConfigError(f"{where}: the config has no key {key!r} to search")
        if isinstance(current, DictConfig) or OmegaConf.is_list(current):
            raise ConfigError(f"{where}: {key!r} is a section, not a value")
        if key.startswith("tune."):
            raise ConfigError(f"{where}: the tune section itself cannot be searched")
        if spec["type"] in ("choice", "grid"):
            candidates = list(spec["values"])
        elif spec["type"] == "randint":
            candidates = [int(spec["low"]), int(spec["high"]) - 1]
        else:
            candidates = [spec["low"], spec["high"]]
        for value in candidates:
            try:
                trial_config(base, {key: value})
            except (ConfigError, ValueError) as err:
                raise ConfigError(f"{where}: value {value!r} is refused: {err}") from None
    return specs


def check_campaign(cfg, trial_config: TrialConfig) -> dict[str, dict[str, Any]]:
    """Everything a campaign needs beyond the section's own values; returns the space specs.
    `trial_config` is config.config_with."""
    specs = check_space(cfg, trial_config)
    t = cfg.tune
    if t.scheduler == "asha":
        max_t = t.asha.max_t or cfg.train.max_steps
        if not max_t:
            raise ConfigError("config key 'tune.asha.max_t': ASHA needs a trial length in steps: set it or train.max_steps")
        grace = t.asha.grace_period or cfg.dist.checkpoint_every
        if grace >= max_t:
            raise ConfigError(f"config key 'tune.asha.grace_period': must be < the trial length of {max_t} steps "
                              f"(got {grace}; 0 means dist.checkpoint_every)")
    if t.scheduler == "pbt":
        if all(s["type"] == "grid" for s in specs.values()):
            raise ConfigError("config key 'tune.space': PBT needs at least one searched key that is not a grid")
        if cfg.train.max_steps and (t.pbt.perturbation_interval or cfg.dist.checkpoint_every) >= cfg.train.max_steps:
            raise ConfigError(f"config key 'tune.pbt.perturbation_interval': must be < train.max_steps "
                              f"({cfg.train.max_steps}) or no trial is ever perturbed")
    from crossnet_dist.evaluation.config import groups_for_metric

    groups_for_metric(t.metric)  # raises ConfigError for an unknown metric
    higher_is_better = t.metric.startswith("paired_ssim")  # every other metric: lower is better
    if higher_is_better != (t.mode == "max"):
        raise ConfigError(f"config key 'tune.mode': {t.metric} is better when "
                          f"{'higher' if higher_is_better else 'lower'}: use tune.mode={'max' if higher_is_better else 'min'}")
    return specs


def check_resources(cfg, total_cpus: float) -> None:
    d, t = cfg.dist, cfg.tune
    need = t.trial_cpus + d.num_workers * d.cpus_per_worker
    if need > total_cpus + 1e-9:
        raise ConfigError(
            f"config key 'dist.cpus_per_worker': one trial needs tune.trial_cpus + dist.num_workers * "
            f"dist.cpus_per_worker = {t.trial_cpus} + {d.num_workers} * {d.cpus_per_worker} = {need:g} CPUs but "
            f"Ray has {total_cpus:g}: its workers would never start (e.g. dist.cpus_per_worker=0.5)"
        )
