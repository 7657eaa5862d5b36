"""One Tune trial: a driver function that builds the distributed package's TorchTrainer
(`build_trainer`, the same workers/DeepSpeed/checkpoints as `crossnet train`) for the trial's
config, fits it, and reports to Tune.

What Tune sees, in order: the workers' report at every checkpoint (every dist.checkpoint_every
steps, and the last step; the training losses of the last train.log_every window, `progress/step`)
plus the held-out score of that checkpoint: `eval/<tune.metric>` (and its siblings, `eval/step`).
(Between checkpoints the workers' metrics go to TensorBoard/Prometheus, not through Ray Train.)
  The trial driver computes it (scoring.score_checkpoint) while the workers train on, so a
  scheduler's decision at a rung uses the held-out metric of a real checkpoint at that step, never
  a training-loss proxy (training losses are not comparable across loss weights).
- the newest report is held back until the next one arrives or the run has ended: the run's last
  report is passed on only after `fit()` returned, i.e. after generator.pt is exported, so a
  scheduler decision on it can never cut the export short.

Every scored report carries a Tune checkpoint: a pointer (pointer.json) to the Train checkpoint
it scored, not a copy of it. When Tune restarts the trial from a checkpoint (a resumed campaign, a
trial PBT paused, or PBT's exploit step, which hands the trial another trial's checkpoint) the
driver reads the pointer:
- its own checkpoint: the same Train run continues (Ray Train resumes it from its newest checkpoint);
- another trial's (PBT exploit): a new Train run of this trial, `<trial_id>-from-<donor>-<step>`,
  starts from the donor's checkpoint (dist.init_from) with this trial's new values. Under PBT the
  Train runs keep every checkpoint (dist.keep_checkpoints=0): a donor's must outlive its clones.

Files, in `<campaign>/runs/<trial_id>/` (the trial's first Train run folder): the Train
checkpoints, generator.pt (the serving export of a trial that ran to its end without PBT moving
it), attempts.log (one line per start of this trial's driver: a resumed campaign does not restart
finished trials; a PBT restart names its donor) and trial.json (written when the trial completed:
params, final metrics, seconds, `run` (the Train run that exported its generator.pt) and, after
PBT exploits, `lineage`: the donors and the values taken at each).
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ray.train.v2.api.callback import UserCallback

log = logging.getLogger(__name__)
RUNS_DIR = "runs"


class ForwardReports(UserCallback):
    """Runs in the Train controller: passes rank 0's metrics and the checkpoint path of every report
    (the workers report at checkpoints only, so every report has one) to the trial driver through a
    Ray queue (as TuneReportCallback does to the Tune session)."""

    def __init__(self, channel):
        self.channel = channel

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        self.channel.put((dict(metrics[0]), checkpoint.path))


POINTER = "pointer.json"


def read_pointer(checkpoint) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return json.loads((Path(folder) / POINTER).read_text())


def report_scored(metrics: dict[str, Any], pointer: dict[str, Any]) -> None:
    from ray import tune

    with tempfile.TemporaryDirectory(prefix="crossnet-tune-pointer-") as tmp:
        (Path(tmp) / POINTER).write_text(json.dumps(pointer, indent=2, sort_keys=True))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def choose_run(trial_id: str, pointer: dict[str, Any] | None, storage) -> tuple[str, str, list]:
    """(Train run name, dist.init_from, lineage) of this start of the trial."""
    if pointer is None:
        return trial_id, "", []
    if pointer["trial_id"] == trial_id:
        return pointer["run"], "", list(pointer.get("lineage", []))
    base = run = f"{trial_id}-from-{pointer['trial_id']}-{int(pointer['step']):08d}"
    k = 1
    while storage.exists(run):  # the same donor checkpoint handed to this trial again
        k += 1
        run = f"{base}-{k}"
    return run, pointer["checkpoint"], list(pointer.get("lineage", []))


def prune_scored(filesystem, checkpoint: str, keep: int) -> None:
    """Deletes the step_* checkpoints of `checkpoint`'s run older than the newest `keep` up to and
    including it (0 = keep all); newer ones, not scored yet, are never touched."""
    if keep <= 0:
        return
    import pyarrow.fs as pafs

    run, _, name = checkpoint.rstrip("/").rpartition("/")
    infos = filesystem.get_file_info(pafs.FileSelector(run, allow_not_found=True))
    scored = sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory and
                    i.base_name.startswith("step_") and i.base_name <= name)
    for old in scored[:-keep]:
        filesystem.delete_dir(f"{run}/{old}")


def run_trial(config: dict[str, Any], base: dict[str, Any], runs_url: str) -> None:
    """The Tune trainable. `config`: {config key: value} of this trial; `base`: the campaign's
    config (a plain dict); `runs_url`: where the trials' Train runs go (`<campaign>/runs`)."""
    import ray
    from ray import tune
    from ray.util.queue import Empty, Queue

    from crossnet_dist.config import config_with
    from crossnet_dist.distributed.driver import build_trainer
    from crossnet_dist.storage.runs import append_text, resolve_storage, write_bytes
    from crossnet_dist.tuning.scoring import score_checkpoint
    from crossnet_dist.tuning.space import _plain

    t0 = time.time()
    trial_id = tune.get_context().get_trial_id()
    params = {k: _plain(v) for k, v in config.items()}
    cfg = config_with(base, params)  # a refused value fails this trial only, naming the key
    storage = resolve_storage(runs_url, cfg.data.storage)
    pointer = read_pointer(tune.get_checkpoint())
    run, init_from, lineage = choose_run(trial_id, pointer, storage)
    # seconds of training behind this trial's model: earlier starts, and a PBT donor's time before the clone
    before = float(pointer.get("seconds", 0.0)) if pointer is not None else 0.0
    if init_from:
        lineage.append({"from_trial": pointer["trial_id"], "from_run": pointer["run"], "step": int(pointer["step"]),
                        "params": params})
        cfg.dist.init_from = init_from
    # The Train run keeps every checkpoint: the driver scores each one while the workers train on, and
    # prunes a run's checkpoints only once scored (Ray Train's own pruning raced ahead of a slow score
    # and deleted a checkpoint before it was read). Under PBT nothing is pruned: a donor's must outlive
    # its clones.
    keep = 0 if cfg.tune.scheduler == "pbt" else cfg.dist.keep_checkpoints
    cfg.dist.keep_checkpoints = 0
    run_dir = f"{storage.fs_path}/{trial_id}"
    how = f"from {pointer['trial_id']} step {pointer['step']} ({init_from})" if init_from else \
        ("resume" if pointer is not None else "start")
    append_text(storage.filesystem, f"{run_dir}/attempts.log",
                f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {how} run {run} {json.dumps(params, sort_keys=True)}\n")

    channel = Queue(actor_options={"num_cpus": 0})
    trainer = build_trainer(cfg, run, storage, board=None, callbacks=[ForwardReports(channel)])
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as err:  # noqa: BLE001 (re-raised in the trial driver)
            outcome["error"] = err

    def scored(metrics: dict[str, Any], checkpoint: str) -> tuple[dict[str, Any], dict[str, Any]]:
        step = int(metrics.get("progress/step", 0))
        metrics.update(score_checkpoint(checkpoint, storage.filesystem, cfg, step))
        metrics["eval/seconds_total"] = seconds = before + time.time() - t0
        return metrics, {"trial_id": trial_id, "run": run, "step": step, "checkpoint": storage.url_of(checkpoint),
                         "lineage": lineage, "seconds": seconds}

    thread = threading.Thread(target=fit, name=f"fit-{trial_id}", daemon=True)
    thread.start()
    held: tuple[dict[str, Any], dict[str, Any]] | None = None  # (metrics, pointer) not yet passed on
    last: dict[str, Any] = {}
    n_scored = 0
    while True:
        try:
            metrics, checkpoint = channel.get(timeout=0.5)
        except Empty:
            if thread.is_alive():
                continue
            try:  # fit() returned: every callback has put its item already
                metrics, checkpoint = channel.get_nowait()
            except Empty:
                break
        if held is not None:
            report_scored(*held)
        held = scored(metrics, checkpoint)  # the workers report at checkpoints only
        prune_scored(storage.filesystem, checkpoint, keep)
        last = held[0]
        n_scored += 1
    thread.join()
    if "error" in outcome:
        if held is not None:
            report_scored(*held)  # how far the trial got before it crashed
        raise outcome["error"]
    if held is None:
        # The Train run had already reached its end: PBT paused the trial at a report while its
        # workers trained on to the last step, then started it again. Its last checkpoint is
        # reported again, so Tune sees the trial end.
        final = outcome["result"].checkpoint
        if final is None:
            raise RuntimeError(f"trial {trial_id}: the training run ended without a report")
        step = int(final.path.rstrip("/").rsplit("_", 1)[-1])  # <run>/step_XXXXXXXX
        held = scored({"progress/step": float(step)}, final.path)
        last = held[0]
    summary = {
        "trial_id": trial_id, "params": params, "metric": cfg.tune.metric,
        "value": last.get(f"eval/{cfg.tune.metric}"), "step": int(last.get("progress/step", 0)),
        "seconds": before + time.time() - t0, "checkpoints_scored": n_scored, "run": run, "lineage": lineage,
        "generator": f"{storage.run_url(run, 'generator.pt')}",
    }
    write_bytes(storage.filesystem, f"{run_dir}/trial.json", json.dumps(summary, indent=2, sort_keys=True).encode())
    report_scored(*held)  # the last report, after generator.pt and trial.json exist
    ray.kill(channel.actor)
