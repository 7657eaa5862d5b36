"""A Ray Tune campaign over config keys (by default the five CrossNet loss weights): what
`crossnet tune` runs.

Layout of a campaign, `<tune.storage_path or dist.storage_path>/<campaign>/` (local or s3://):
  campaign.yaml            the campaign's config (a resumed campaign uses this one, not the CLI's)
  experiment_state-*.json, tuner.pkl, <trial dirs>/    Ray Tune's own state (Tuner.restore reads it)
  runs/<trial_id>/         each trial's Ray Train run: checkpoints, generator.pt, attempts.log, trial.json
  trials.csv, trials.md    one row per trial: searched values, metric, status, steps, seconds
  metric_vs_params.png     the metric against each searched value
  best/generator.pt        the serving checkpoint of the best completed trial (`crossnet serve
  best/best.json           --checkpoint <campaign>/best/`), with its config, metric and trial id

Schedulers (tune.scheduler): asha stops trials at rungs on the held-out metric; pbt exploits and
explores at checkpoints (trial.py: a moved trial continues in a new Train run from its donor's
checkpoint, runs/<trial>-from-<donor>-<step>/); fifo runs every trial to its end.

Resources. Each trial is a driver (a Tune function trainable reserving tune.trial_cpus, 0.01 by
default: it only waits on the Train run and scores checkpoints) plus dist.num_workers Ray Train
workers reserving dist.cpus_per_worker (+ a GPU each with dist.use_gpu). On a small machine keep
tune.max_concurrent_trials * (trial_cpus + num_workers * cpus_per_worker) within the CPUs Ray has,
or the workers never start (checked here before the campaign starts). On a cluster, raise
max_concurrent_trials (up to the cluster's GPUs / num_workers) and, with use_gpu, set
cpus_per_worker to the CPUs the data pipeline needs: Tune places each trial's worker group
like any Train run (dist.placement_strategy), so trials spread over the nodes.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from crossnet_dist.config import ConfigError, config_from_container, config_with, to_container
from crossnet_dist.ray_local import connect_ray
from crossnet_dist.storage.runs import RunStorage, join_path, read_text, resolve_storage, timestamped_name, write_bytes
from crossnet_dist.tuning.checks import check_campaign, check_resources
from crossnet_dist.tuning.results import CampaignResult, summarize
from crossnet_dist.tuning.space import ClipToSpace, pbt_mutations, trial_count, tune_space
from crossnet_dist.tuning.trial import RUNS_DIR, run_trial

log = logging.getLogger(__name__)
CAMPAIGN_CONFIG = "campaign.yaml"


# ---- the campaign ---------------------------------------------------------------------------

def campaign_storage(cfg) -> RunStorage:
    return resolve_storage(cfg.tune.storage_path or cfg.dist.storage_path, cfg.data.storage)


def _absolute_data(container: dict[str, Any]) -> None:
    """Trials run in their own working folder: a relative local data.root becomes absolute."""
    root = container["data"]["root"]
    if "://" not in root:
        container["data"]["root"] = str(Path(root).expanduser().resolve())


def _trainable(cfg, base: dict[str, Any], runs_url: str):
    from ray import tune

    fn = tune.with_parameters(run_trial, base=base, runs_url=runs_url)
    resources = {"cpu": cfg.tune.trial_cpus}
    if cfg.dist.use_gpu:
        resources["gpu"] = 0  # the workers hold the GPUs; the driver scores on tune.eval_device
    return tune.with_resources(fn, resources)


def _scheduler(cfg, specs):
    t = cfg.tune
    if t.scheduler == "fifo":
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()
    if t.scheduler == "pbt":
        from crossnet_dist.tuning.pbt import PopulationBasedTrainingBeforeLastStep

        p = t.pbt
        return PopulationBasedTrainingBeforeLastStep(
            last_step=cfg.train.max_steps, time_attr="progress/step",
            perturbation_interval=p.perturbation_interval or cfg.dist.checkpoint_every,
            burn_in_period=p.burn_in, hyperparam_mutations=pbt_mutations(specs),
            quantile_fraction=p.quantile_fraction, resample_probability=p.resample_probability,
            perturbation_factors=tuple(p.perturbation_factors), custom_explore_fn=ClipToSpace(specs),
            synch=p.synch,
            require_attrs=False,  # a report without the held-out score is skipped (see run_campaign)
        )
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="progress/step", max_t=t.asha.max_t or cfg.train.max_steps,
        grace_period=t.asha.grace_period or cfg.dist.checkpoint_every, reduction_factor=t.asha.reduction_factor,
        brackets=t.asha.brackets,
        stop_last_trials=False,  # a trial at its last step finishes (and exports) by itself
    )


def _searcher(cfg):
    """(search_alg, max_concurrent_trials for TuneConfig): the variant generator takes the
    concurrency limit itself (Tune ignores TuneConfig's for it)."""
    t = cfg.tune
    if t.searcher == "optuna":
        from crossnet_dist.tuning.optuna import ScoredOptunaSearch

        return ScoredOptunaSearch(seed=t.seed), t.max_concurrent_trials
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=t.seed, max_concurrent=t.max_concurrent_trials), None


def run_campaign(cfg, address: str | None = None, resume: str | None = None, num_cpus: int | None = None) -> CampaignResult:
    """Starts campaign tune.name (or resumes campaign `resume`), waits for it, then writes the
    trial table, the plot and the best pointer. `address`: a Ray cluster (else dist.address, else
    RAY_ADDRESS, else a local Ray on 127.0.0.1 with `num_cpus` CPUs)."""
    storage = campaign_storage(cfg)
    fs = storage.filesystem
    name = storage.pick_name(resume or None, cfg.tune.name or timestamped_name(cfg.train.out_dir, "tune"), key="tune.name",
                             kind="campaign", marker=CAMPAIGN_CONFIG)
    path = join_path(storage.fs_path, name)
    if resume:
        stored = read_text(fs, join_path(path, CAMPAIGN_CONFIG))
        cfg = config_from_container(OmegaConf.to_container(OmegaConf.create(stored)))
    specs = check_campaign(cfg, config_with)
    base = to_container(cfg)
    _absolute_data(base)
    base["train"]["progress"] = False
    OmegaConf.update(cfg, "tune.name", name)  # the stored config names its campaign
    base["tune"]["name"] = name

    # Every report of a trial is made at a checkpoint and carries its held-out score (trial.py). The
    # strict check stays off so that a report without it would be skipped by ASHA, PBT and
    # ScoredOptunaSearch rather than end the whole campaign.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    started = connect_ray(address or cfg.dist.address or None, num_cpus)
    import ray
    from ray import tune

    try:
        check_resources(cfg, float(ray.cluster_resources().get("CPU", 0)))
        runs_url = storage.run_url(name, RUNS_DIR)
        trainable = _trainable(cfg, base, runs_url)
        if resume:
            if not tune.Tuner.can_restore(path, storage_filesystem=fs):
                raise ConfigError(f"--resume: {storage.run_url(name)} holds no Ray Tune state to restore")
            print(f"campaign {name}: resuming from {storage.run_url(name)}", flush=True)
            tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False,
                                       restart_errored=False, storage_filesystem=fs)
        else:
            fs.create_dir(path, recursive=True)
            write_bytes(fs, join_path(path, CAMPAIGN_CONFIG), OmegaConf.to_yaml(OmegaConf.create(base)).encode())
            t = cfg.tune
            print(f"campaign {name}: {trial_count(specs, t.num_samples)} trials over {', '.join(specs)}; "
                  f"{t.scheduler} + {t.searcher}, metric {t.metric} ({t.mode}) on {t.split}; "
                  f"{cfg.dist.num_workers} workers per trial; storage {storage.run_url(name)}", flush=True)
            search_alg, max_concurrent = _searcher(cfg)
            tuner = tune.Tuner(
                trainable, param_space=tune_space(specs),
                tune_config=tune.TuneConfig(
                    metric=f"eval/{t.metric}", mode=t.mode, scheduler=_scheduler(cfg, specs), search_alg=search_alg,
                    num_samples=t.num_samples, max_concurrent_trials=max_concurrent, time_budget_s=t.time_budget_s,
                ),
                run_config=tune.RunConfig(
                    name=name, storage_path=storage.fs_path, storage_filesystem=fs,
                    failure_config=tune.FailureConfig(max_failures=0),  # a crashed trial is reported, not rerun
                    verbose=1,
                ),
            )
        with warnings.catch_warnings():
            # Tune suggests reuse_actors + reset_config for PBT; a moved trial here is a new Train
            # run (new worker group, DeepSpeed engines), so there is no actor worth reusing.
            warnings.filterwarnings("ignore", message="Consider boosting PBT performance")
            results = tuner.fit()
        return summarize(results, cfg, storage, name, specs)
    finally:
        if started:
            ray.shutdown()
