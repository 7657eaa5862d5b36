"""The single-process trainer (CPU or one GPU, no Ray): epochs, logging, samples, checkpoints.

Layout of a run folder (`train.out_dir`):
  checkpoints/step_XXXXXXXX.pt  training state, the last `train.keep_checkpoints` kept
  generator.pt                  serving export (E and D of both directions) written at the end
  samples/step_XXXXXXXX.png     input | translation | reconstruction grids
  metrics.jsonl                 one JSON line per logged step
  tb/                           TensorBoard event files
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Iterable

import torch
from tqdm import tqdm

from crossnet_dist.config import to_container
from crossnet_dist.devices import resolve_device
from crossnet_dist.image_pool import ImagePool
from crossnet_dist.methods import TranslationMethod, build_method
from crossnet_dist.storage.retry import StorageUnavailableError
from crossnet_dist.training.checkpoint import (
    FORMAT_VERSION,
    TRAIN_FORMAT,
    atomic_save,
    list_step_checkpoints,
    load_checked,
    prune_step_checkpoints,
    step_checkpoint_path,
)
from crossnet_dist.training.compile import compile_networks
from crossnet_dist.training.divergence import FiniteGate, NonFiniteWatch, close_step
from crossnet_dist.training.ema import build_ema
from crossnet_dist.training.loss_window import LossWindow
from crossnet_dist.training.optimizers import OptimizerGroup, TorchOptimizerGroup
from crossnet_dist.training.precision import StepPrecision
from crossnet_dist.training.samples import save_sample_grid
from crossnet_dist.training.seed import seed_everything
from crossnet_dist.training.step import step_batches, train_step
from crossnet_dist.translator_checkpoint import serving_payload

log = logging.getLogger(__name__)


class Trainer:
    def __init__(self, cfg, method: TranslationMethod | None = None, device: torch.device | None = None):
        self.cfg = cfg
        seed_everything(cfg.train.seed)
        self.device = device or resolve_device(cfg.train.device)
        self.precision = StepPrecision.from_config(cfg.train, self.device)
        self.method = self.precision.prepare_module((method or build_method(cfg)).to(self.device))
        if cfg.train.compile:
            compile_networks(self.method)
        self.g_opt: OptimizerGroup = TorchOptimizerGroup(self.method.generators.parameters(), cfg.optim)
        self.d_opt: OptimizerGroup = TorchOptimizerGroup(self.method.discriminators.parameters(), cfg.optim)
        self.pools = {d: ImagePool(cfg.optim.pool_size, seed=cfg.train.seed + i) for i, d in enumerate("ab")}
        self.ema = build_ema(self.method, cfg.train.ema_decay)
        self.watch = NonFiniteWatch()  # train.nonfinite=stop: checked per log window and before any save
        self.gate = FiniteGate(cfg.train.nonfinite_max_skips) if cfg.train.nonfinite == "skip" else None
        self.step = 0
        self.epoch = 0
        self.epoch_step = 0  # loader batches consumed in the current epoch
        self.out_dir = Path(cfg.train.out_dir)
        self._sample_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self._writer = None

    # ---- training -------------------------------------------------------------------------
    @property
    def total_epochs(self) -> int:
        return self.cfg.optim.n_epochs + self.cfg.optim.n_epochs_decay

    def train_batch(self, batches: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """One step on the step's batches (`step_batches`: one, or one per critic update); returns the
        detached loss terms as tensors (reading them is a device sync)."""
        pairs = [(self._to_device(b["a"]), self._to_device(b["b"])) for b in batches]
        if self._sample_batch is None:
            self._sample_batch = (pairs[0][0][:4].detach().clone(), pairs[0][1][:4].detach().clone())
        x_a, x_b = pairs[-1]
        metrics = train_step(self.method, x_a, x_b, self.g_opt, self.d_opt, self.pools, critic_batches=pairs[:-1],
                             gate=self.gate, precision=self.precision)
        close_step(self.step + 1, metrics, self.watch, self.gate)
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        self.epoch_step += len(batches)
        return metrics

    def _to_device(self, images: torch.Tensor) -> torch.Tensor:
        """Asynchronous from pinned memory (the loader pins on CUDA: `pin_memory`)."""
        return self.precision.prepare_batch(images.to(self.device, non_blocking=True))

    @property
    def pin_memory(self) -> bool:
        return self.device.type == "cuda"

    def fit(self, loader: Iterable[dict[str, Any]]) -> dict[str, float]:
        """Runs epochs until the schedule ends or `train.max_steps` is reached; returns the last
        window's mean losses.

        If the loader's dataset has `set_epoch(epoch, start_index)`, it is told where to resume.
        """
        cfg = self.cfg.train
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._tensorboard()  # its import (~0.15 s) would otherwise stall the first log window
        max_steps = cfg.max_steps or None
        last: dict[str, float] = {}
        bar = tqdm(total=max_steps, initial=self.step, disable=not cfg.progress, desc="train", unit="step")
        t_window, n_window, s_window = time.perf_counter(), 0, 0
        losses = LossWindow()
        try:
            while self.epoch < self.total_epochs and not self._done(max_steps):
                dataset = getattr(loader, "dataset", None)
                if hasattr(dataset, "set_epoch"):
                    dataset.set_epoch(self.epoch, start_index=self.epoch_step * self.cfg.data.batch_size)
                for batches in step_batches(loader, self.method):
                    losses.add(self.train_batch(batches))
                    n_window += sum(b["a"].shape[0] for b in batches)
                    s_window += 1
                    bar.update(1)
                    if self.step % cfg.log_every == 0:
                        self.watch.check()
                        last = losses.means()  # mean over the window: one sync per log_every steps
                        losses.reset()
                        elapsed = time.perf_counter() - t_window
                        last["perf/images_per_s"] = n_window / max(elapsed, 1e-9)
                        last["perf/step_time_s"] = elapsed / s_window
                        last["lr/G"] = self.g_opt.lr
                        if self.gate is not None:
                            last.update(self.gate.metrics())
                        stats = getattr(loader, "stats", None)  # images read / skipped, storage retries
                        if hasattr(stats, "as_metrics"):
                            last.update(stats.as_metrics("data/"))
                        self._log(last)
                        bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in last.items() if k.startswith("loss/")})
                        t_window, n_window, s_window = time.perf_counter(), 0, 0
                    if self.step % cfg.sample_every == 0:
                        self.save_samples()
                    if self.step % cfg.checkpoint_every == 0:
                        self.save_checkpoint()
                    if self._done(max_steps):
                        break
                else:
                    self._end_epoch()
                    continue
                break
            if losses.steps:  # the steps after the last log line
                last = losses.means()
        except StorageUnavailableError as err:
            raise self._storage_gave_up(err) from err
        finally:
            bar.close()
            if self._writer is not None:
                self._writer.flush()
        self.save_checkpoint()
        self.save_samples()
        self.export_serving()
        return last

    def _storage_gave_up(self, err: StorageUnavailableError) -> StorageUnavailableError:
        """The data stopped coming: keep every trained step (a checkpoint at this step; the batch that
        failed was never trained) and say how to continue."""
        try:
            saved = f"checkpoint {self.save_checkpoint()} holds step {self.step}"
        except Exception as save_err:  # noqa: BLE001 - the storage error is the one to report
            saved = f"no checkpoint written ({type(save_err).__name__}: {save_err})"
        return StorageUnavailableError(f"{err}; {saved}: once storage is back, rerun the command with --resume")

    def _done(self, max_steps: int | None) -> bool:
        return max_steps is not None and self.step >= max_steps

    def _end_epoch(self) -> None:
        self.g_opt.end_epoch()
        self.d_opt.end_epoch()
        self.epoch += 1
        self.epoch_step = 0

    # ---- outputs --------------------------------------------------------------------------
    def _log(self, metrics: dict[str, float]) -> None:
        record = {"step": self.step, "epoch": self.epoch, **metrics}
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        writer = self._tensorboard()
        for key, value in metrics.items():
            writer.add_scalar(key, value, self.step)

    def _tensorboard(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.out_dir / "tb"))
        return self._writer

    def save_samples(self) -> Path | None:
        if self._sample_batch is None:
            return None
        return save_sample_grid(self.method, *self._sample_batch, self.out_dir / "samples" / f"step_{self.step:08d}.png")

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": TRAIN_FORMAT,
            "version": FORMAT_VERSION,
            "method": self.method.name,
            "config": to_container(self.cfg),
            "step": self.step,
            "epoch": self.epoch,
            "epoch_step": self.epoch_step,
            "generators": self.method.generators.state_dict(),
            "discriminators": self.method.discriminators.state_dict(),
            "g_optim": self.g_opt.state_dict(),
            "d_optim": self.d_opt.state_dict(),
            "pools": {d: pool.state_dict() for d, pool in self.pools.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["method"] != self.method.name:
            raise ValueError(f"checkpoint is for method {state['method']!r}, config says {self.method.name!r}")
        self.method.generators.load_state_dict(state["generators"])
        self.method.discriminators.load_state_dict(state["discriminators"])
        self.g_opt.load_state_dict(state["g_optim"])
        self.d_opt.load_state_dict(state["d_optim"])
        for d, pool in self.pools.items():
            pool.load_state_dict(state["pools"][d])
            pool.to(self.device)
        if self.ema is not None:
            if state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            else:  # a checkpoint of a run without EMA: the average starts at its weights
                self.ema = build_ema(self.method, self.cfg.train.ema_decay)
                log.info("the checkpoint has no EMA weights; the average starts from its weights")
        self.step, self.epoch, self.epoch_step = state["step"], state["epoch"], state["epoch_step"]
        torch.set_rng_state(state["torch_rng"])

    def save_checkpoint(self) -> Path:
        self.watch.check()  # a diverged model is never saved
        folder = self.out_dir / "checkpoints"
        path = atomic_save(self.state_dict(), step_checkpoint_path(folder, self.step))
        prune_step_checkpoints(folder, self.cfg.train.keep_checkpoints)
        return path

    def resume(self, path: str | Path | None = None) -> Path | None:
        """Loads `path`, or the newest checkpoint of this run's folder; returns what it loaded."""
        if path is None:
            found = list_step_checkpoints(self.out_dir / "checkpoints")
            if not found:
                return None
            path = found[-1]
        self.load_state_dict(load_checked(path, TRAIN_FORMAT, map_location=self.device))
        log.info("resumed from %s at step %d (epoch %d)", path, self.step, self.epoch)
        return Path(path)

    def export_serving(self, path: str | Path | None = None) -> Path:
        self.watch.check()
        path = Path(path) if path else self.out_dir / "generator.pt"
        return atomic_save(serving_payload(self.method, to_container(self.cfg), self.step, self.ema), path)
