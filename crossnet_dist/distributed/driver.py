"""The driver of a distributed run: connect to Ray, start the Ray Train workers, show progress,
and say where the results are.

`train_distributed(cfg)` runs on a laptop (a local Ray on 127.0.0.1 is started when no cluster
address is given) and on a cluster (`ray job submit ... -- python jobs/train.py CONFIG`, where
RAY_ADDRESS points the driver at the cluster).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

from crossnet_dist.config import to_container
from crossnet_dist.ray_local import connect_ray
from crossnet_dist.storage.runs import RunStorage, resolve_storage, timestamped_name

log = logging.getLogger(__name__)


@dataclass
class DistributedResult:
    run_name: str
    run_url: str  # <storage>/<run>
    generator_url: str  # <storage>/<run>/generator.pt
    step: int
    metrics: dict[str, float]
    summary: dict[str, Any]  # rank 0's return value: memory, nodes, lost steps, ...
    checkpoint_path: str | None
    history: list[dict[str, float]]  # rank 0's reports in order, one per train.log_every steps


def choose_run_name(cfg, storage: RunStorage, resume: str | None) -> str:
    """`resume` = None: a new run (dist.run_name, else <out_dir name>-<timestamp>);
    "" : the newest run in storage; a name: that run (it must exist)."""
    return storage.pick_name(resume, cfg.dist.run_name or timestamped_name(cfg.train.out_dir), key="dist.run_name")


def build_trainer(cfg, run_name: str, storage: RunStorage, board=None, callbacks=()):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from crossnet_dist.distributed.worker import train_loop_per_worker

    d = cfg.dist
    env = {"DS_ACCELERATOR": "cuda" if d.use_gpu else "cpu"}
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": to_container(cfg), "board": board, "run_name": run_name},
        torch_config=TorchConfig(backend="nccl" if d.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=d.num_workers, use_gpu=d.use_gpu, resources_per_worker={"CPU": d.cpus_per_worker},
            placement_strategy=d.placement_strategy,
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage.ray_storage_path,
            storage_filesystem=storage.filesystem,
            checkpoint_config=CheckpointConfig(num_to_keep=d.keep_checkpoints or None),
            failure_config=FailureConfig(max_failures=d.max_failures),
            worker_runtime_env={"env_vars": env},
            callbacks=list(callbacks),
        ),
    )


@contextlib.contextmanager
def _sigterm_tells(board):
    """A SIGTERM asks the ranks to stop (through the board). The handler only sets an event: it runs
    inside whatever Ray call the main thread is in, so the actor call is made from a thread of its own."""
    from crossnet_dist.training.stop_signal import stop_on_sigterm

    asked, finished = threading.Event(), threading.Event()

    def forward() -> None:
        while not finished.is_set():
            if asked.wait(0.2):
                board.request_stop.remote("SIGTERM")
                return

    thread = threading.Thread(target=forward, name="crossnet-sigterm", daemon=True)
    thread.start()
    try:
        with stop_on_sigterm(lambda reason: asked.set()):
            yield
    finally:
        finished.set()
        thread.join(timeout=5)


def train_distributed(cfg, address: str | None = None, resume: str | None = None, progress: bool | None = None,
                      num_cpus: int | None = None) -> DistributedResult:
    storage = resolve_storage(cfg.dist.storage_path, cfg.data.storage)
    run_name = choose_run_name(cfg, storage, resume)
    started = connect_ray(address or cfg.dist.address or None, num_cpus)  # first: it may set Ray's env

    import ray

    from crossnet_dist.distributed.progress import ProgressPrinter, create_board

    try:
        total = cfg.train.max_steps or None
        board = create_board(total)
        trainer = build_trainer(cfg, run_name, storage, board=board)
        show = cfg.train.progress if progress is None else progress
        print(f"run {run_name}: {cfg.dist.num_workers} workers, ZeRO-{cfg.dist.zero_stage}, "
              f"storage {storage.run_url(run_name)}", flush=True)
        with ProgressPrinter(board, total, enabled=show), _sigterm_tells(board):
            result = trainer.fit()
        summary = result.return_value or {}
        final = ray.get(board.snapshot.remote())
        history = ray.get(board.history.remote())
        summary.setdefault("lost_steps", final["lost_steps"])
        return DistributedResult(
            run_name=run_name, run_url=storage.run_url(run_name), generator_url=storage.run_url(run_name, "generator.pt"),
            step=int(summary.get("step", final["step"])), metrics=dict(result.metrics or {}), summary=summary,
            checkpoint_path=result.checkpoint.path if result.checkpoint else None, history=history,
        )
    finally:
        if started:
            ray.shutdown()
