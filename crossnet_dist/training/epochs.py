"""The epoch loop both trainers run, and the step they share.

`training.loop.Trainer` (one process) and `distributed.worker.WorkerLoop` (a DeepSpeed rank) are
EpochTrainers. They build the same parts (`prepare_method`, `build_step_state`) around their own
optimiser groups (torch.optim, or DeepSpeed engines) and differ only in what they override:
- `epoch_batches`: the loader as it is, or (ranks) only while every rank still has a batch;
- `step_context`: nothing, or (ranks) the step profiler;
- `after_step`: logging, samples, checkpoints; for ranks also the driver's board.
Resuming is the same for both: `step`, `epoch` and `epoch_step` come from a checkpoint, and the
dataset is told where in the epoch to start (`set_epoch(epoch, start_index)`).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, ContextManager, Iterable

import torch

from crossnet_dist.image_pool import ImagePool
from crossnet_dist.training.compile import compile_networks
from crossnet_dist.training.divergence import FiniteGate, NonFiniteWatch, close_step
from crossnet_dist.training.ema import build_ema
from crossnet_dist.training.precision import StepPrecision
from crossnet_dist.training.step import step_batches, train_step


class EpochTrainer:
    # set by the subclass before training: the config, the method and where it runs, the step's parts
    cfg: Any
    method: Any
    device: torch.device
    precision: Any
    g_opt: Any
    d_opt: Any
    pools: dict
    ema: Any
    watch: Any
    gate: Any
    step: int = 0
    epoch: int = 0
    epoch_step: int = 0  # loader batches consumed in the current epoch
    deadline: float | None = None  # time.monotonic() at which train.max_minutes runs out (start_clock)
    stop_requested: str | None = None  # why to stop after the current step (e.g. "SIGTERM": stop_signal.py)

    @property
    def total_epochs(self) -> int:
        return self.cfg.optim.n_epochs + self.cfg.optim.n_epochs_decay

    @property
    def max_steps(self) -> int | None:
        return self.cfg.train.max_steps or None

    def done(self) -> bool:
        return (
            (self.max_steps is not None and self.step >= self.max_steps)
            or self.stop_requested is not None
            or self.out_of_time()
        )

    def start_clock(self) -> None:
        """Starts train.max_minutes (0 = no time limit); each process start (a resume too) gets the whole budget."""
        minutes = self.cfg.train.max_minutes
        self.deadline = time.monotonic() + 60.0 * minutes if minutes > 0 else None

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    # ---- what a subclass may change ---------------------------------------------------------
    def epoch_batches(self, loader: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        return loader

    def step_context(self) -> ContextManager:
        return contextlib.nullcontext()

    def after_step(self, batches: list[dict[str, Any]], terms: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    # ---- shared -----------------------------------------------------------------------------
    def prepare_method(self, method) -> None:
        """`method` on this trainer's device and precision, compiled when train.compile is set."""
        self.precision = StepPrecision.from_config(self.cfg.train, self.device)
        self.method = self.precision.prepare_module(method.to(self.device))
        if self.cfg.train.compile:
            compile_networks(self.method)

    def build_step_state(self, pool_seed: int, all_ranks_finite: Callable[[bool], bool] = lambda ok: ok) -> None:
        """The parts of a step besides the networks: image pools, EMA, the non-finite guards
        (train.nonfinite=stop: checked per log window and before any save; skip: every update gated)."""
        t = self.cfg.train
        self.pools = {d: ImagePool(self.cfg.optim.pool_size, seed=pool_seed + i) for i, d in enumerate("ab")}
        self.ema = build_ema(self.method, t.ema_decay)
        self.watch = NonFiniteWatch()
        self.gate = FiniteGate(t.nonfinite_max_skips, all_ranks_finite) if t.nonfinite == "skip" else None

    def _to_device(self, images: torch.Tensor) -> torch.Tensor:
        """Asynchronous from pinned memory (the loaders pin on CUDA)."""
        return self.precision.prepare_batch(images.to(self.device, non_blocking=True))

    def train_batch(self, batches: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """One step on the step's batches (`step_batches`: one, or one per critic update); returns the
        detached loss terms as tensors (reading them is a device sync)."""
        pairs = [(self._to_device(b["a"]), self._to_device(b["b"])) for b in batches]
        x_a, x_b = pairs[-1]
        with self.step_context():
            terms = train_step(self.method, x_a, x_b, self.g_opt, self.d_opt, self.pools, critic_batches=pairs[:-1],
                               gate=self.gate, precision=self.precision)
        close_step(self.step + 1, terms, self.watch, self.gate)
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        self.epoch_step += len(batches)
        return terms

    def end_epoch(self) -> None:
        self.g_opt.end_epoch()
        self.d_opt.end_epoch()
        self.epoch += 1
        self.epoch_step = 0

    def run_epochs(self, loader: Iterable[dict[str, Any]]) -> None:
        """Trains from the current position until the schedule ends, `train.max_steps` is reached or
        `train.max_minutes` have passed (checked after each step)."""
        dataset = getattr(loader, "dataset", None)
        if self.deadline is None:
            self.start_clock()
        while not self.done() and self.epoch < self.total_epochs:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(self.epoch, start_index=self.epoch_step * self.cfg.data.batch_size)
            for batches in step_batches(self.epoch_batches(loader), self.method):
                self.after_step(batches, self.train_batch(batches))
                if self.done():
                    return
            if self.done():  # stopped between steps (ranks: a stop request, the time limit): the position stays
                return
            self.end_epoch()
