"""What each Ray Train worker runs: the shared epoch loop (training/epochs.py) on a DeepSpeed rank.

The rank builds the method, wraps its two network groups in DeepSpeed engines, streams its shard
of the data, reports and checkpoints (distributed/checkpoint.py), resumes, and exports the serving
checkpoint at the end.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as tdist

from crossnet_dist.checkpoints.files import atomic_save
from crossnet_dist.config import config_from_container, to_container
from crossnet_dist.distributed.checkpoint import gathered_serving_payload, restore_rank, start_checkpoint, write_rank_files
from crossnet_dist.distributed.quiet import quiet_known_warnings, quiet_report_echo
from crossnet_dist.distributed.step_parts import StepProfiler
from crossnet_dist.methods import build_method
from crossnet_dist.training.divergence import NEVER, diverged
from crossnet_dist.training.epochs import EpochTrainer
from crossnet_dist.training.loss_window import LossWindow
from crossnet_dist.training.seed import seed_everything

log = logging.getLogger(__name__)

def load_factory(spec: str) -> Callable:
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"config key 'dist.loader': cannot import {spec!r}: {err}") from None


class WorkerLoop(EpochTrainer):
    _late = False  # train.max_minutes ran out on some rank (decided in epoch_batches)
    _stop_query = None  # rank 0's pending question to the driver's board (_driver_stop)

    def __init__(self, config: dict[str, Any]):
        self.cfg = config_from_container(config["cfg"])
        self.board = config.get("board")  # the driver's actor: progress, failures of earlier groups
        self.run_name = config["run_name"]
        self._place()
        self._build_parts()
        self._resume()
        self._join_group()
        from crossnet_dist.distributed.telemetry import Telemetry

        self.telemetry = Telemetry(self.run_name, self.storage, enabled=self.rank == 0)
        self.memory: dict[str, float] = {}
        self.loader = None

    def _place(self) -> None:
        """This rank, the group's size, its device and the storage Ray Train gives it."""
        import ray.train

        ctx = ray.train.get_context()
        self.storage = ctx.get_storage()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        if self.cfg.dist.use_gpu:
            import ray.train.torch

            self.device = ray.train.torch.get_device()
        else:
            self.device = torch.device("cpu")
        self.control_group = tdist.new_group(backend="gloo") if self.cfg.dist.use_gpu else None  # see _all_reduce

    def _build_parts(self) -> None:
        """The method in DeepSpeed engines, and the step's parts (pools, EMA, non-finite guards)."""
        from crossnet_dist.distributed.engines import build_engine

        cfg, d = self.cfg, self.cfg.dist
        seed_everything(cfg.train.seed)  # identical initial weights on every rank
        self.prepare_method(build_method(cfg))
        self.g_opt = build_engine(self.method.generators, "generators", cfg.optim, d, cfg.data.batch_size)
        self.d_opt = build_engine(self.method.discriminators, "discriminators", cfg.optim, d, cfg.data.batch_size)
        self.profiler = StepProfiler(self.world, (self.g_opt, self.d_opt), self._device_sync) if d.profile_steps else None
        seed = cfg.train.seed + 7919 * self.rank
        torch.manual_seed(seed + 1)  # per-rank noise for methods that sample (UNIT's z, WGAN-GP's mixing)
        self.build_step_state(pool_seed=seed, all_ranks_finite=self._every_rank_finite)  # EMA identical on every rank

    def _resume(self) -> None:
        """From this run's newest checkpoint (a restarted group), else from dist.init_from, else fresh."""
        import ray.train

        self.step = self.epoch = self.epoch_step = 0
        self.lost_steps = self.restarts = 0
        own = ray.train.get_checkpoint()
        restore_rank(self, own if own is not None else start_checkpoint(self.cfg.dist.init_from, self.cfg.data.storage))
        self.last_checkpoint_step = self.step if own is not None else -1

    def _join_group(self) -> None:
        """Rank 0 learns from the driver's board whether this group replaces a failed one; every rank
        learns the group's nodes."""
        import ray

        session = (0, 0)
        if self.board is not None and self.rank == 0:
            session = ray.get(self.board.group_started.remote(self.step))
        gathered = self._all_gather((ray.get_runtime_context().get_node_id(), session))
        self.node_ids = [node for node, _ in gathered]
        lost, session_restarts = gathered[0][1]
        self.lost_steps += lost
        self.restarts += 1 if session_restarts else 0

    # ---- helpers --------------------------------------------------------------------------
    def _device_sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # Control values (every rank has a batch, metrics, node ids) go over gloo on the CPU, on GPUs too:
    # over NCCL each would be a device copy and a host sync, the per-step batch check included.
    def _all_gather(self, obj) -> list:
        out = [None] * self.world
        tdist.all_gather_object(out, obj, group=self.control_group)
        return out

    def _all_reduce(self, values: list[float], op=tdist.ReduceOp.SUM) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64)
        tdist.all_reduce(t, op=op, group=self.control_group)
        return t.tolist()

    # ---- checkpoints ----------------------------------------------------------------------
    def _every_rank_finite(self, ok: bool) -> bool:
        (all_ok,) = self._all_reduce([1.0 if ok else 0.0], op=tdist.ReduceOp.MIN)
        return all_ok > 0.5

    def check_finite(self) -> None:
        """Collective: every rank raises the same DivergenceError when any rank saw a non-finite loss."""
        bad = self.watch.first_bad()
        (first,) = self._all_reduce([float(bad[0]) if bad else float(NEVER)], op=tdist.ReduceOp.MIN)
        if first < NEVER:
            terms = bad[1] if bad and bad[0] == int(first) else [f"a loss term on another rank than {self.rank}"]
            raise diverged(int(first), terms)

    def save_and_report(self, metrics: dict[str, float]) -> None:
        import ray.train

        self.check_finite()  # a diverged model is never saved

        folder = Path(tempfile.mkdtemp(prefix=f"crossnet-ckpt-{self.step:08d}-r{self.rank}-"))
        try:
            write_rank_files(self, folder)
            self.last_checkpoint_step = self.step
            ray.train.report(
                metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)),
                checkpoint_dir_name=f"step_{self.step:08d}",
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.telemetry.sync()

    # ---- training -------------------------------------------------------------------------
    def epoch_batches(self, loader):
        """Yields this rank's batches while every rank still has one: the ranks stay in lock step
        (each step is a collective) even when the shards of an epoch differ in length. The time
        spent waiting here is the window's data wait."""
        it = iter(loader)
        while True:
            t_wait = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                batch = None
            with self.profiler.parts.timed("batch_sync") if self.profiler else contextlib.nullcontext():
                # The step's one collective decides together whether every rank has a batch, whether the
                # driver asked to stop (rank 0 knows), and whether any rank's clock is past train.max_minutes.
                driver_stop = self._driver_stop()
                all_have, go_on, in_time = self._all_reduce(
                    [0.0 if batch is None else 1.0, 0.0 if driver_stop else 1.0,
                     0.0 if EpochTrainer.out_of_time(self) else 1.0], op=tdist.ReduceOp.MIN)
            self.window["wait"] += time.perf_counter() - t_wait
            if not go_on:  # the run stops at this step: run() checkpoints it
                self.stop_requested = driver_stop or "a stop request"
                return
            if not in_time:
                self._late = True
                return
            if not all_have:
                return
            yield batch

    def _driver_stop(self) -> str | None:
        """Rank 0: why the driver's board asks training to stop, if it does, without waiting for its
        answer (the question asked at one step is read at a later one)."""
        if self.board is None or self.rank != 0:
            return None
        import ray

        if self._stop_query is None:
            self._stop_query = self.board.stop_requested.remote()
        ready, _ = ray.wait([self._stop_query], timeout=0)
        if not ready:
            return None
        reason, self._stop_query = ray.get(self._stop_query), None
        return reason

    def out_of_time(self) -> bool:
        """train.max_minutes as the ranks decided it together in epoch_batches' collective."""
        return self._late

    def step_context(self):
        return self.profiler.step() if self.profiler else contextlib.nullcontext()

    def run(self) -> dict[str, Any]:
        cfg, d = self.cfg, self.cfg.dist
        self.loader = load_factory(d.loader)(cfg.data, image_size=cfg.model.image_size, seed=cfg.train.seed,
                                             rank=self.rank, world_size=self.world, pin_memory=self.device.type == "cuda")
        self.method.train()
        self.t_start = time.perf_counter()
        self._new_window()
        self.losses = LossWindow()
        self.last: dict[str, float] = {}
        self.g_opt.measure_grads = self.d_opt.measure_grads = True
        self.run_epochs(self.loader)
        if self.last_checkpoint_step != self.step:  # the schedule ended between checkpoints
            if self.window["steps"] or not self.last:
                self.last = self._metrics(self.losses, self.window)
            self.save_and_report(self.last)
        generator = self.export()
        self.telemetry.close()
        return {
            "step": self.step, "epoch": self.epoch, "generator": generator, "metrics": self.last, "memory": self.memory,
            "nodes": self.node_ids, "lost_steps": self.lost_steps, "restarts": self.restarts,
            "world_size": self.world, "zero_stage": d.zero_stage, "stopped": self.stop_requested,
        }

    def _new_window(self) -> None:
        self.window = {"t0": time.perf_counter(), "steps": 0, "images": 0, "wait": 0.0}
        if self.profiler:
            self.profiler.start_window()

    def after_step(self, batches, terms) -> None:
        d = self.cfg.dist
        self.losses.add(terms)
        self.window["steps"] += 1
        self.window["images"] += sum(b["a"].shape[0] for b in batches)
        if self.g_opt.measure_grads:
            self.g_opt.measure_grads = self.d_opt.measure_grads = False
            self.memory = {**memory_of(self.g_opt, "G"), **memory_of(self.d_opt, "D")}
        if self.board is not None and self.rank == 0:
            self.board.push_step.remote(self.step)
        checkpoint = self.step % d.checkpoint_every == 0 or self.done()
        if self.step % self.cfg.train.log_every == 0 or checkpoint:
            self.last = self._metrics(self.losses, self.window)
            self.losses.reset()
            if checkpoint:
                self.save_and_report(self.last)
            # Between checkpoints the metrics go to the driver's board and the telemetry
            # only (in _metrics), not through ray.train.report: Ray Train's controller takes
            # one report per worker per poll (every 2 s), so a report while the previous one
            # waits blocks training (3x the step time at log_every=4 on the tiny model).
            self._new_window()

    def _metrics(self, losses: LossWindow, window: dict[str, float]) -> dict[str, float]:
        means = losses.means()  # the window's one host-device sync of the loss terms
        keys = sorted(means)
        n = max(window["steps"], 1)
        elapsed = time.perf_counter() - window["t0"]
        # the data pipeline's counters since this worker group started (images read, skipped, ...)
        stats = getattr(self.loader, "stats", None)
        data = stats.as_metrics("data/") if hasattr(stats, "as_metrics") else {}
        data_keys = sorted(data)
        # mean loss over the window and over ranks; images and data counters summed over ranks
        reduced = self._all_reduce([means[k] for k in keys] + [data[k] for k in data_keys] + [window["images"]])
        (elapsed_max, wait_max) = self._all_reduce([elapsed, window["wait"]], op=tdist.ReduceOp.MAX)
        metrics = {k: v / self.world for k, v in zip(keys, reduced[: len(keys)])}
        metrics.update(zip(data_keys, reduced[len(keys):-1]))
        metrics.update({
            "progress/step": float(self.step), "progress/epoch": float(self.epoch),
            "perf/images_per_s": reduced[-1] / max(elapsed_max, 1e-9),
            "perf/step_time_s": elapsed_max / n, "perf/data_wait_s": wait_max / n,
            "perf/elapsed_s": time.perf_counter() - self.t_start,  # since this worker group began training
            "lr/G": self.g_opt.lr, "lr/D": self.d_opt.lr,
            "fault/lost_steps": float(self.lost_steps), "fault/restarts": float(self.restarts),
            **self.memory,
        })
        if self.gate is not None:
            metrics.update(self.gate.metrics())
        if self.profiler:
            metrics.update(self.profiler.metrics(self._all_reduce(self.profiler.window_values()), self.world, n))
        self.check_finite()
        if self.rank == 0:
            self.telemetry.log(self.step, metrics)
            if self.board is not None:
                self.board.push_metrics.remote(self.step, metrics)
        return metrics

    def export(self) -> str | None:
        """Writes <run>/generator.pt (the one-file serving checkpoint) from rank 0."""
        from crossnet_dist.storage.runs import upload_file

        self.check_finite()
        payload = gathered_serving_payload(self.method, to_container(self.cfg), self.step, self.cfg.dist.zero_stage,
                                           self.rank, self.ema)
        target = None
        if self.rank == 0:
            with tempfile.TemporaryDirectory(prefix="crossnet-export-") as tmp:
                local = atomic_save(payload, Path(tmp) / "generator.pt")
                target = f"{self.storage.experiment_fs_path}/generator.pt"
                upload_file(local, self.storage.storage_filesystem, target)
        tdist.barrier()
        return target


def memory_of(group, prefix: str) -> dict[str, float]:
    from crossnet_dist.distributed.engines import memory_report

    return memory_report(prefix, group)


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """The Ray Train entry point (`TorchTrainer(train_loop_per_worker, train_loop_config=...)`)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_report_echo()
    quiet_known_warnings()
    return WorkerLoop(config).run()
