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

import csv
import io
import json
import logging
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from omegaconf import OmegaConf

from crossnet_dist.config import ConfigError, config_from_container, to_container
from crossnet_dist.distributed.storage import RunStorage, resolve_storage, upload_file
from crossnet_dist.ray_local import connect_ray
from crossnet_dist.tuning.space import ClipToSpace, check_space, pbt_mutations, trial_count, tune_space
from crossnet_dist.tuning.trial import RUNS_DIR, run_trial

log = logging.getLogger(__name__)
CAMPAIGN_CONFIG = "campaign.yaml"


@dataclass
class TrialRow:
    trial_id: str
    status: str  # completed | stopped | paused | errored | not run | no report
    params: dict[str, Any]
    value: float | None  # the metric of the trial's last scored checkpoint
    step: int  # last step reported
    seconds: float | None
    error: str = ""
    generator: str | None = None
    run: str | None = None  # the Train run (under runs/) that exported the trial's generator.pt
    lineage: list = field(default_factory=list)  # PBT: the donors this trial continued from


@dataclass
class CampaignResult:
    name: str
    url: str  # <storage>/<campaign>
    metric: str
    mode: str
    rows: list[TrialRow]
    best: TrialRow | None
    best_url: str | None  # <campaign>/best/
    files: dict[str, str] = field(default_factory=dict)  # table / plot URLs

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)


# ---- config checks --------------------------------------------------------------------------

def check_campaign(cfg) -> dict[str, dict[str, Any]]:
    """Everything a campaign needs beyond config.validate; returns the space specs."""
    specs = check_space(cfg)
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
        if not pbt_mutations(specs):
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


# ---- storage helpers ------------------------------------------------------------------------

def _join(*parts: str) -> str:
    return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts))


def _read_text(fs: pafs.FileSystem, path: str) -> str | None:
    try:
        with fs.open_input_stream(path) as f:
            return f.read().decode()
    except (FileNotFoundError, OSError):
        return None


def _write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="crossnet-tune-") as tmp:
        local = Path(tmp) / Path(path).name
        local.write_bytes(data)
        upload_file(local, fs, path)


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


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
    if resume:
        name = Path(resume).name if resume.startswith(storage.url) else resume
        path = _join(storage.fs_path, name)
        stored = _read_text(fs, _join(path, CAMPAIGN_CONFIG))
        if stored is None:
            raise ConfigError(
                f"--resume: campaign {name!r} not found under {storage.url} "
                f"(campaigns: {[n for n in storage.run_names() if _exists(fs, _join(storage.fs_path, n, CAMPAIGN_CONFIG))]})"
            )
        cfg = config_from_container(OmegaConf.to_container(OmegaConf.create(stored)))
    else:
        name = cfg.tune.name or f"{Path(cfg.train.out_dir).name}-tune-{time.strftime('%Y%m%d-%H%M%S')}"
        path = _join(storage.fs_path, name)
        if _exists(fs, path):
            raise ConfigError(f"config key 'tune.name': campaign {name!r} already exists under {storage.url}; "
                              f"continue it with --resume {name} or pick another name")
    specs = check_campaign(cfg)
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
            _write_bytes(fs, _join(path, CAMPAIGN_CONFIG), OmegaConf.to_yaml(OmegaConf.create(base)).encode())
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


# ---- results --------------------------------------------------------------------------------

def _status(trial, fs: pafs.FileSystem, run_dir: str) -> tuple[str, str]:
    from ray.tune.experiment import Trial

    if trial.status == Trial.ERROR:
        err = trial.get_error()
        text = str(err).strip().splitlines() if err is not None else []
        # the cause is the last line of a Ray error ("...Error: message")
        return "errored", next((line.strip() for line in reversed(text) if "Error" in line), text[-1] if text else "error")
    if trial.status == Trial.PENDING or (trial.status == Trial.PAUSED and not trial.last_result):
        return "not run", ""
    if trial.status == Trial.PAUSED:  # PBT paused it for another trial and the campaign ended first
        return "paused", ""
    if not trial.last_result or "progress/step" not in trial.last_result:
        return "no report", "the trial never reported: check that its workers could start (resources)"
    if _exists(fs, _join(run_dir, "trial.json")):
        return "completed", ""
    return "stopped", ""


def collect_rows(results, cfg, storage: RunStorage, name: str, specs) -> list[TrialRow]:
    fs = storage.filesystem
    metric = f"eval/{cfg.tune.metric}"
    rows = []
    analysis = results._experiment_analysis  # ray.tune.ExperimentAnalysis: every trial with its status
    for trial in analysis.trials:  # in the order the trials were created
        run_dir = _join(storage.fs_path, name, RUNS_DIR, trial.trial_id)
        status, error = _status(trial, fs, run_dir)
        df = analysis.trial_dataframes.get(trial.trial_id)
        value = None
        if df is not None and metric in df.columns and df[metric].notna().any():
            value = float(df[metric].dropna().iloc[-1])
        last = trial.last_result or {}
        summary = json.loads(_read_text(fs, _join(run_dir, "trial.json")) or "{}")
        seconds = summary.get("seconds", last.get("time_total_s"))
        rows.append(TrialRow(
            trial_id=trial.trial_id, status=status, params={k: trial.config.get(k) for k in specs},
            value=value, step=int(last.get("progress/step", 0)), seconds=float(seconds) if seconds is not None else None,
            error=error, generator=summary.get("generator") if status == "completed" else None,
            run=summary.get("run", trial.trial_id), lineage=summary.get("lineage", []),
        ))
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table_csv(rows: list[TrialRow], specs, metric: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trial_id", "status", *specs, metric, "steps", "seconds", "error"])
    for r in rows:
        writer.writerow([r.trial_id, r.status, *(r.params.get(k) for k in specs), r.value, r.step,
                         None if r.seconds is None else round(r.seconds, 1), r.error])
    return out.getvalue()


def table_markdown(rows: list[TrialRow], specs, metric: str, best: TrialRow | None) -> str:
    head = ["trial", "status", *specs, metric, "steps", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        mark = " (best)" if best is not None and r.trial_id == best.trial_id else ""
        status = r.status + (f": {r.error}" if r.error else "")
        if r.lineage:  # PBT: the trials (and steps) this one continued from
            status += " (from " + ", ".join(f"{x['from_trial']}@{x['step']}" for x in r.lineage) + ")"
        cells = [r.trial_id + mark, status.replace("|", "/"), *(_fmt(r.params.get(k)) for k in specs), _fmt(r.value),
                 str(r.step), _fmt(r.seconds)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_png(rows: list[TrialRow], specs, metric: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = [k for k in specs if all(isinstance(r.params.get(k), (int, float, type(None))) for r in rows)]
    keys = numeric or list(specs)[:1]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.0), squeeze=False)
    styles = {"completed": dict(marker="o", color="tab:blue"), "stopped": dict(marker="x", color="tab:orange")}
    for ax, key in zip(axes[0], keys):
        for status, style in styles.items():
            pts = [(r.params.get(key), r.value) for r in rows if r.status == status and r.value is not None
                   and isinstance(r.params.get(key), (int, float)) and math.isfinite(r.value)]
            if pts:
                ax.scatter(*zip(*pts), label=status, **style)
        ax.set_xlabel(key.split(".")[-1] if key.startswith("loss.") else key)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][-1].legend(handles, labels, fontsize=8)
    fig.suptitle(f"{metric} of each trial's last scored checkpoint (stopped: at its last rung)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def pick_best(rows: list[TrialRow], mode: str) -> TrialRow | None:
    done = [r for r in rows if r.status == "completed" and r.value is not None and math.isfinite(r.value)]
    if not done:
        return None
    return (min if mode == "min" else max)(done, key=lambda r: r.value)


def summarize(results, cfg, storage: RunStorage, name: str, specs) -> CampaignResult:
    fs = storage.filesystem
    t = cfg.tune
    rows = collect_rows(results, cfg, storage, name, specs)
    best = pick_best(rows, t.mode)
    root = _join(storage.fs_path, name)
    files = {
        "csv": "trials.csv", "markdown": "trials.md", "plot": "metric_vs_params.png",
    }
    _write_bytes(fs, _join(root, files["csv"]), table_csv(rows, specs, t.metric).encode())
    _write_bytes(fs, _join(root, files["markdown"]), table_markdown(rows, specs, t.metric, best).encode())
    _write_bytes(fs, _join(root, files["plot"]), plot_png(rows, specs, t.metric))
    best_url = None
    if best is not None:
        src = _join(root, RUNS_DIR, best.run or best.trial_id, "generator.pt")
        best_dir = _join(root, "best")
        fs.create_dir(best_dir, recursive=True)
        with tempfile.TemporaryDirectory(prefix="crossnet-tune-best-") as tmp:
            local = Path(tmp) / "generator.pt"
            pafs.copy_files(src, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
            upload_file(local, fs, _join(best_dir, "generator.pt"))
        from crossnet_dist.tuning.space import trial_config

        pointer = {
            "campaign": name, "trial_id": best.trial_id, "metric": t.metric, "mode": t.mode, "value": best.value,
            "split": t.split, "step": best.step, "params": best.params,
            "source": storage.run_url(name, RUNS_DIR, best.run or best.trial_id, "generator.pt"),
            "lineage": best.lineage,
            "config": to_container(trial_config(to_container(cfg), best.params)),
        }
        _write_bytes(fs, _join(best_dir, "best.json"), json.dumps(pointer, indent=2, sort_keys=True).encode())
        best_url = storage.run_url(name, "best") + "/"
    return CampaignResult(name=name, url=storage.run_url(name), metric=t.metric, mode=t.mode, rows=rows, best=best,
                          best_url=best_url, files={k: storage.run_url(name, v) for k, v in files.items()})
