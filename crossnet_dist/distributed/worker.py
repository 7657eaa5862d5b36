"""The loop each Ray Train worker runs: build the method, wrap its two network groups in DeepSpeed
engines, stream this rank's shard of the data, run the shared `train_step`, report, checkpoint,
resume, and export the serving checkpoint at the end.

A checkpoint (`<run>/step_XXXXXXXX/` in storage) is the merge of every rank's files:
  generators/state/, discriminators/state/   DeepSpeed checkpoints (ZeRO shards one file per rank)
  position_rank_XXXXX.pt                     step, epoch, batches into the epoch, image pools,
                                             LR schedules, RNG, fault counters of that rank
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as tdist

from crossnet_dist.config import config_from_container, to_container
from crossnet_dist.distributed.quiet import quiet_known_warnings, quiet_report_echo
from crossnet_dist.distributed.step_parts import StepProfiler
from crossnet_dist.image_pool import ImagePool
from crossnet_dist.methods import build_method
from crossnet_dist.training.checkpoint import atomic_save
from crossnet_dist.training.divergence import NEVER, FiniteGate, NonFiniteWatch, close_step, diverged
from crossnet_dist.training.ema import build_ema
from crossnet_dist.training.loss_window import LossWindow
from crossnet_dist.training.precision import StepPrecision
from crossnet_dist.training.seed import seed_everything
from crossnet_dist.training.step import step_batches, train_step

log = logging.getLogger(__name__)

DS_TAG = "state"
ENGINES = ("generators", "discriminators")


def load_factory(spec: str) -> Callable:
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"config key 'dist.loader': cannot import {spec!r}: {err}") from None


def position_file(rank: int) -> str:
    return f"position_rank_{rank:05d}.pt"


class WorkerLoop:
    def __init__(self, config: dict[str, Any]):
        import ray.train

        from crossnet_dist.distributed.engines import build_engine

        self.cfg = config_from_container(config["cfg"])
        self.board = config.get("board")
        self.run_name = config["run_name"]
        ctx = ray.train.get_context()
        self.storage = ctx.get_storage()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        d = self.cfg.dist
        if d.use_gpu:
            import ray.train.torch

            self.device = ray.train.torch.get_device()
        else:
            self.device = torch.device("cpu")
        self.precision = StepPrecision.from_config(self.cfg.train, self.device)
        self.control_group = tdist.new_group(backend="gloo") if d.use_gpu else None  # see _all_reduce

        seed_everything(self.cfg.train.seed)  # identical initial weights on every rank
        self.method = self.precision.prepare_module(build_method(self.cfg).to(self.device))
        if self.cfg.train.compile:
            from crossnet_dist.training.compile import compile_networks

            compile_networks(self.method)
        batch = self.cfg.data.batch_size
        self.g_opt = build_engine(self.method.generators, self.cfg.optim, d, batch)
        self.d_opt = build_engine(self.method.discriminators, self.cfg.optim, d, batch)
        self.profiler = StepProfiler(self.world, (self.g_opt, self.d_opt), self._device_sync) if d.profile_steps else None
        seed = self.cfg.train.seed + 7919 * self.rank
        torch.manual_seed(seed + 1)  # per-rank noise for methods that sample (UNIT's z, WGAN-GP's mixing)
        self.pools = {dom: ImagePool(self.cfg.optim.pool_size, seed=seed + i) for i, dom in enumerate("ab")}
        self.ema = build_ema(self.method, self.cfg.train.ema_decay)  # identical on every rank (ZeRO 0-2)
        self.watch = NonFiniteWatch()  # train.nonfinite=stop; checked by every rank at each report
        self.gate = (FiniteGate(self.cfg.train.nonfinite_max_skips, self._every_rank_finite)
                     if self.cfg.train.nonfinite == "skip" else None)
        self.step = self.epoch = self.epoch_step = 0
        self.lost_steps = self.restarts = 0
        self.loader = None
        own = ray.train.get_checkpoint()  # this run's newest checkpoint, when it resumes
        self.restored = self.restore(own if own is not None else start_checkpoint(d.init_from, self.cfg.data.storage))
        self.last_checkpoint_step = self.step if own is not None else -1
        # rank 0 learns from the driver's board whether this group replaces a failed one
        session = (0, 0)
        if self.board is not None and self.rank == 0:
            session = ray.get(self.board.group_started.remote(self.step))
        gathered = self._all_gather((ray.get_runtime_context().get_node_id(), session))
        self.node_ids = [node for node, _ in gathered]
        lost, self.session_restarts = gathered[0][1]
        self.lost_steps += lost
        self.restarts += 1 if self.session_restarts else 0  # this group replaces a failed one

        from crossnet_dist.distributed.telemetry import Telemetry

        self.telemetry = Telemetry(self.run_name, self.storage, enabled=self.rank == 0)
        self.memory: dict[str, float] = {}

    # ---- helpers --------------------------------------------------------------------------
    def _device_sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _to_device(self, images: torch.Tensor) -> torch.Tensor:
        return self.precision.prepare_batch(images.to(self.device, non_blocking=True))  # pinned on CUDA

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
    def position(self) -> dict[str, Any]:
        return {
            "step": self.step, "epoch": self.epoch, "epoch_step": self.epoch_step, "world_size": self.world,
            "pools": {dom: pool.state_dict() for dom, pool in self.pools.items()},
            "g_schedule": self.g_opt.state_dict(), "d_schedule": self.d_opt.state_dict(),
            "torch_rng": torch.get_rng_state(), "lost_steps": self.lost_steps, "restarts": self.restarts,
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def restore(self, checkpoint) -> bool:
        if checkpoint is None:
            return False
        with checkpoint.as_directory() as folder:
            folder = Path(folder)
            pos_path = folder / position_file(self.rank)
            if not pos_path.is_file():
                found = sorted(p.name for p in folder.glob("position_rank_*.pt"))
                raise RuntimeError(
                    f"checkpoint {checkpoint.path} has no {pos_path.name} (it holds {found}): it was written by "
                    f"{len(found)} workers; resume with dist.num_workers={len(found)}"
                )
            pos = torch.load(pos_path, map_location="cpu", weights_only=True)
            if pos["world_size"] != self.world:
                raise RuntimeError(
                    f"checkpoint {checkpoint.path} was written by {pos['world_size']} workers, this run has "
                    f"{self.world}: resume with dist.num_workers={pos['world_size']}"
                )
            for name, group in zip(ENGINES, (self.g_opt, self.d_opt)):
                path, _ = group.engine.load_checkpoint(str(folder / name), tag=DS_TAG, load_lr_scheduler_states=False)
                if path is None:
                    raise RuntimeError(f"checkpoint {checkpoint.path} has no DeepSpeed state for {name}")
        for dom, pool in self.pools.items():
            pool.load_state_dict(pos["pools"][dom])
            pool.to(self.device)
        self.g_opt.load_state_dict(pos["g_schedule"])
        self.d_opt.load_state_dict(pos["d_schedule"])
        for group in (self.g_opt, self.d_opt):  # the LR is this run's (PBT may have changed optim.lr)
            group.set_base_lr(self.cfg.optim.lr)
        torch.set_rng_state(pos["torch_rng"])
        if self.ema is not None:
            if pos.get("ema") is not None:
                self.ema.load_state_dict(pos["ema"])
            else:  # started from a run without EMA (dist.init_from): the average starts at its weights
                self.ema = build_ema(self.method, self.cfg.train.ema_decay)
                log.info("rank %d: %s has no EMA weights; the average starts from its weights", self.rank, checkpoint.path)
        self.step, self.epoch, self.epoch_step = pos["step"], pos["epoch"], pos["epoch_step"]
        self.lost_steps, self.restarts = pos["lost_steps"], pos["restarts"]
        log.info("rank %d resumed from %s at step %d (epoch %d, batch %d)", self.rank, checkpoint.path, self.step,
                 self.epoch, self.epoch_step)
        return True

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
            for name, group in zip(ENGINES, (self.g_opt, self.d_opt)):
                (folder / name).mkdir(parents=True, exist_ok=True)
                group.engine.save_checkpoint(str(folder / name), tag=DS_TAG)
            atomic_save(self.position(), folder / position_file(self.rank))
            self.last_checkpoint_step = self.step
            ray.train.report(
                metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)),
                checkpoint_dir_name=f"step_{self.step:08d}",
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.telemetry.sync()

    # ---- training -------------------------------------------------------------------------
    def _batches(self, loader):
        """Yields this rank's batches while every rank still has one: the ranks stay in lock step
        (each step is a collective) even when the shards of an epoch differ in length."""
        it = iter(loader)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                batch = None
            with self.profiler.parts.timed("batch_sync") if self.profiler else contextlib.nullcontext():
                (all_have,) = self._all_reduce([0.0 if batch is None else 1.0], op=tdist.ReduceOp.MIN)
            if not all_have:
                return
            yield batch

    def run(self) -> dict[str, Any]:
        cfg, d = self.cfg, self.cfg.dist
        factory = load_factory(d.loader)
        loader = factory(cfg.data, image_size=cfg.model.image_size, seed=cfg.train.seed, rank=self.rank,
                         world_size=self.world, pin_memory=self.device.type == "cuda")
        self.loader = loader
        dataset = getattr(loader, "dataset", None)
        max_steps = cfg.train.max_steps or None
        total_epochs = cfg.optim.n_epochs + cfg.optim.n_epochs_decay
        log_every, ckpt_every = cfg.train.log_every, d.checkpoint_every
        # fault injection: once per driver session (the first worker group only)
        fail_here = d.fail_at_step > 0 and self.rank == d.fail_rank and self.session_restarts == 0 and not self.restored

        self.method.train()
        self.t_start = time.perf_counter()
        window = {"t0": self.t_start, "steps": 0, "images": 0, "wait": 0.0}
        if self.profiler:
            self.profiler.start_window()
        losses = LossWindow()
        self.g_opt.measure_grads = self.d_opt.measure_grads = True
        done = max_steps is not None and self.step >= max_steps
        last: dict[str, float] = {}
        while not done and self.epoch < total_epochs:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(self.epoch, start_index=self.epoch_step * cfg.data.batch_size)
            t_wait = time.perf_counter()
            for batches in step_batches(self._batches(loader), self.method):
                window["wait"] += time.perf_counter() - t_wait
                pairs = [(self._to_device(b["a"]), self._to_device(b["b"])) for b in batches]
                x_a, x_b = pairs[-1]
                with self.profiler.step() if self.profiler else contextlib.nullcontext():
                    terms = train_step(self.method, x_a, x_b, self.g_opt, self.d_opt, self.pools,
                                       critic_batches=pairs[:-1], gate=self.gate, precision=self.precision)
                close_step(self.step + 1, terms, self.watch, self.gate)
                losses.add(terms)
                if self.ema is not None:
                    self.ema.update()
                self.step += 1
                self.epoch_step += len(batches)
                window["steps"] += 1
                window["images"] += sum(a.shape[0] for a, _ in pairs)
                if self.g_opt.measure_grads:
                    self.g_opt.measure_grads = self.d_opt.measure_grads = False
                    self.memory = {**memory_of(self.g_opt, "G"), **memory_of(self.d_opt, "D")}
                if self.board is not None and self.rank == 0:
                    self.board.push_step.remote(self.step)
                if fail_here and self.step == d.fail_at_step:
                    log.warning("fault injection: rank %d kills itself at step %d", self.rank, self.step)
                    os.kill(os.getpid(), signal.SIGKILL)
                done = max_steps is not None and self.step >= max_steps
                if self.step % log_every == 0 or self.step % ckpt_every == 0 or done:
                    last = self._metrics(losses, window)
                    losses.reset()
                    if self.step % ckpt_every == 0 or done:
                        self.save_and_report(last)
                    # Between checkpoints the metrics go to the driver's board and the telemetry
                    # only (in _metrics), not through ray.train.report: Ray Train's controller takes
                    # one report per worker per poll (every 2 s), so a report while the previous one
                    # waits blocks training (3x the step time at log_every=4 on the tiny model).
                    window = {"t0": time.perf_counter(), "steps": 0, "images": 0, "wait": 0.0}
                    if self.profiler:
                        self.profiler.start_window()
                if done:
                    break
                t_wait = time.perf_counter()
            else:
                self.g_opt.end_epoch()
                self.d_opt.end_epoch()
                self.epoch += 1
                self.epoch_step = 0
                continue
            break
        if self.last_checkpoint_step != self.step:  # the schedule ended between checkpoints
            last = self._metrics(losses, window) if window["steps"] else (last or self._metrics(LossWindow(), window))
            self.save_and_report(last)
        generator = self.export()
        self.telemetry.close()
        return {
            "step": self.step, "epoch": self.epoch, "generator": generator, "metrics": last, "memory": self.memory,
            "nodes": self.node_ids, "lost_steps": self.lost_steps, "restarts": self.restarts,
            "world_size": self.world, "zero_stage": d.zero_stage,
        }

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
        from crossnet_dist.distributed.engines import gathered_serving_payload
        from crossnet_dist.distributed.storage import upload_file

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


def start_checkpoint(url: str, storage_cfg):
    """dist.init_from as a Ray Train checkpoint (None when unset); a missing one is an error."""
    if not url:
        return None
    import pyarrow.fs as pafs
    import ray.train

    from crossnet_dist.distributed.storage import resolve_storage

    where = resolve_storage(url, storage_cfg)
    if where.filesystem.get_file_info(where.fs_path).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"config key 'dist.init_from': no checkpoint folder at {where.url}")
    return ray.train.Checkpoint(path=where.fs_path, filesystem=where.filesystem)


def memory_of(group, prefix: str) -> dict[str, float]:
    from crossnet_dist.distributed.engines import memory_report

    return memory_report(prefix, group)


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """The Ray Train entry point (`TorchTrainer(train_loop_per_worker, train_loop_config=...)`)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_report_echo()
    quiet_known_warnings()
    return WorkerLoop(config).run()
