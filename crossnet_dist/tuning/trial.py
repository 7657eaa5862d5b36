"""One Tune trial: a driver function that builds the distributed package's TorchTrainer
(`build_trainer`, the same workers/DeepSpeed/checkpoints as `crossnet train`) for the trial's
config, fits it, and reports to Tune.

What Tune sees, in order:
- every report the workers make (every train.log_every steps: the training losses, `progress/step`);
- at every checkpoint (every dist.checkpoint_every steps, and the last step), the same report plus
  the held-out score of that checkpoint: `eval/<tune.metric>` (and its siblings, `eval/step`).
  The trial driver computes it (scoring.score_checkpoint) while the workers train on, so a
  scheduler's decision at a rung uses the held-out metric of a real checkpoint at that step, never
  a training-loss proxy (training losses are not comparable across loss weights).
- the newest report is held back until the next one arrives or the run has ended: the run's last
  report is passed on only after `fit()` returned, i.e. after generator.pt is exported, so a
  scheduler decision on it can never cut the export short.

Files, in `<campaign>/runs/<trial_id>/` (the Train run folder): the Train checkpoints,
generator.pt (the serving export of a trial that ran to its end), attempts.log (one line per
start of this trial's driver: a resumed campaign does not restart finished trials) and trial.json
(written when the trial completed: params, final metrics, seconds).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from ray.train.v2.api.callback import UserCallback

log = logging.getLogger(__name__)
RUNS_DIR = "runs"


class ForwardReports(UserCallback):
    """Runs in the Train controller: passes rank 0's metrics and the checkpoint path of every report
    to the trial driver through a Ray queue (as TuneReportCallback does to the Tune session)."""

    def __init__(self, channel):
        self.channel = channel

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        self.channel.put((dict(metrics[0]), checkpoint.path if checkpoint else None))


def _write_text(filesystem, path: str, text: str, append: bool = False) -> None:
    parent = path.rsplit("/", 1)[0]
    filesystem.create_dir(parent, recursive=True)
    old = b""
    if append:
        try:
            with filesystem.open_input_stream(path) as f:
                old = f.read()
        except (FileNotFoundError, OSError):
            old = b""
    with filesystem.open_output_stream(path) as f:
        f.write(old + text.encode())


def run_trial(config: dict[str, Any], base: dict[str, Any], runs_url: str) -> None:
    """The Tune trainable. `config`: {config key: value} of this trial; `base`: the campaign's
    config (a plain dict); `runs_url`: where the trials' Train runs go (`<campaign>/runs`)."""
    import ray
    from ray import tune
    from ray.util.queue import Empty, Queue

    from crossnet_dist.distributed.driver import build_trainer
    from crossnet_dist.distributed.storage import resolve_storage
    from crossnet_dist.tuning.scoring import score_checkpoint
    from crossnet_dist.tuning.space import _plain, trial_config

    t0 = time.time()
    trial_id = tune.get_context().get_trial_id()
    params = {k: _plain(v) for k, v in config.items()}
    cfg = trial_config(base, params)  # a refused value fails this trial only, naming the key
    storage = resolve_storage(runs_url, cfg.data.storage)
    run_dir = f"{storage.fs_path}/{trial_id}"
    _write_text(storage.filesystem, f"{run_dir}/attempts.log",
                f"{time.strftime('%Y-%m-%dT%H:%M:%S')} start {json.dumps(params, sort_keys=True)}\n", append=True)

    channel = Queue(actor_options={"num_cpus": 0})
    trainer = build_trainer(cfg, trial_id, storage, board=None, callbacks=[ForwardReports(channel)])
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as err:  # noqa: BLE001 (re-raised in the trial driver)
            outcome["error"] = err

    thread = threading.Thread(target=fit, name=f"fit-{trial_id}", daemon=True)
    thread.start()
    held: dict[str, Any] | None = None
    last: dict[str, Any] = {}
    scored = 0
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
        step = int(metrics.get("progress/step", 0))
        if checkpoint is not None:
            metrics.update(score_checkpoint(checkpoint, storage.filesystem, cfg, step))
            metrics["eval/seconds_total"] = time.time() - t0
            scored += 1
        if held is not None:
            tune.report(held)
        held, last = metrics, metrics
    thread.join()
    if "error" in outcome:
        if held is not None:
            tune.report(held)  # how far the trial got before it crashed
        raise outcome["error"]
    if held is None:
        raise RuntimeError(f"trial {trial_id}: the training run ended without a report")
    summary = {
        "trial_id": trial_id, "params": params, "metric": cfg.tune.metric,
        "value": last.get(f"eval/{cfg.tune.metric}"), "step": int(last.get("progress/step", 0)),
        "seconds": time.time() - t0, "checkpoints_scored": scored,
        "generator": f"{storage.run_url(trial_id, 'generator.pt')}",
    }
    _write_text(storage.filesystem, f"{run_dir}/trial.json", json.dumps(summary, indent=2, sort_keys=True))
    tune.report(held)  # the last report, after generator.pt and trial.json exist
    ray.kill(channel.actor)
