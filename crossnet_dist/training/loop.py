"""The single-process trainer (CPU or one GPU, no Ray): logging, samples, checkpoints around the
shared epoch loop (training/epochs.py).

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

from crossnet_dist.checkpoints.files import atomic_save
from crossnet_dist.checkpoints.translator import serving_payload
from crossnet_dist.config import to_container
from crossnet_dist.devices import resolve_device
from crossnet_dist.methods import TranslationMethod, build_method
from crossnet_dist.storage.retry import StorageUnavailableError, own_message
from crossnet_dist.training.checkpoint import (
    list_step_checkpoints,
    load_training_checkpoint,
    restore_training_state,
    save_training_checkpoint,
    training_state,
)
from crossnet_dist.training.epochs import EpochTrainer
from crossnet_dist.training.loss_window import LossWindow
from crossnet_dist.training.optimizers import OptimizerGroup, torch_optimizer_groups
from crossnet_dist.training.samples import save_sample_grid
from crossnet_dist.training.seed import seed_everything

log = logging.getLogger(__name__)


class Trainer(EpochTrainer):
    def __init__(self, cfg, method: TranslationMethod | None = None, device: torch.device | None = None):
        self.cfg = cfg
        seed_everything(cfg.train.seed)
        self.device = device or resolve_device(cfg.train.device)
        self.prepare_method(method or build_method(cfg))
        self.g_opt: OptimizerGroup
        self.d_opt: OptimizerGroup
        self.g_opt, self.d_opt = torch_optimizer_groups(self.method, cfg.optim)
        self.build_step_state(pool_seed=cfg.train.seed)
        self.step = self.epoch = self.epoch_step = 0
        self.out_dir = Path(cfg.train.out_dir)
        self._sample_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self._writer = None

    # ---- training -------------------------------------------------------------------------
    def train_batch(self, batches: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if self._sample_batch is None:  # the sample grids show the first batch's first images
            first = batches[0]
            self._sample_batch = (self._to_device(first["a"][:4]).clone(), self._to_device(first["b"][:4]).clone())
        return super().train_batch(batches)

    @property
    def pin_memory(self) -> bool:
        return self.device.type == "cuda"

    def fit(self, loader: Iterable[dict[str, Any]]) -> dict[str, float]:
        """Runs epochs until the schedule ends or `train.max_steps` is reached; returns the last
        window's mean losses."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._tensorboard()  # its import (~0.15 s) would otherwise stall the first log window
        self._loader = loader
        self._last: dict[str, float] = {}
        self._losses = LossWindow()
        self._bar = tqdm(total=self.max_steps, initial=self.step, disable=not self.cfg.train.progress, desc="train",
                         unit="step")
        self._window = (time.perf_counter(), 0, 0)  # start, images, steps
        try:
            self.run_epochs(loader)
            if self._losses.steps:  # the steps after the last log line
                self._last = self._losses.means()
        except StorageUnavailableError as err:
            raise self._storage_gave_up(err) from err
        finally:
            self._bar.close()
            if self._writer is not None:
                self._writer.flush()
        self.save_checkpoint()
        self.save_samples()
        self.export_serving()
        return self._last

    def after_step(self, batches: list[dict[str, Any]], terms: dict[str, torch.Tensor]) -> None:
        cfg = self.cfg.train
        self._losses.add(terms)
        t0, images, steps = self._window
        self._window = (t0, images + sum(b["a"].shape[0] for b in batches), steps + 1)
        self._bar.update(1)
        if self.step % cfg.log_every == 0:
            self._log_window()
        if self.step % cfg.sample_every == 0:
            self.save_samples()
        if self.step % cfg.checkpoint_every == 0:
            self.save_checkpoint()

    def _log_window(self) -> None:
        self.watch.check()
        last = self._losses.means()  # mean over the window: one sync per log_every steps
        self._losses.reset()
        t0, images, steps = self._window
        elapsed = time.perf_counter() - t0
        last["perf/images_per_s"] = images / max(elapsed, 1e-9)
        last["perf/step_time_s"] = elapsed / steps
        last["lr/G"] = self.g_opt.lr
        if self.gate is not None:
            last.update(self.gate.metrics())
        stats = getattr(self._loader, "stats", None)  # images read / skipped, storage retries
        if hasattr(stats, "as_metrics"):
            last.update(stats.as_metrics("data/"))
        self._log(last)
        self._bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in last.items() if k.startswith("loss/")})
        self._last = last
        self._window = (time.perf_counter(), 0, 0)

    def _storage_gave_up(self, err: StorageUnavailableError) -> StorageUnavailableError:
        """The data stopped coming: keep every trained step (a checkpoint at this step; the batch that
        failed was never trained) and say how to continue."""
        try:
            saved = f"checkpoint {self.save_checkpoint()} holds step {self.step}"
        except Exception as save_err:  # noqa: BLE001 - the storage error is the one to report
            saved = f"no checkpoint written ({type(save_err).__name__}: {save_err})"
        return StorageUnavailableError(f"{own_message(err)}; {saved}: once storage is back, rerun the command with --resume")

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
        return training_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        restore_training_state(self, state)

    def save_checkpoint(self) -> Path:
        self.watch.check()  # a diverged model is never saved
        return save_training_checkpoint(self, self.out_dir / "checkpoints", self.cfg.train.keep_checkpoints)

    def resume(self, path: str | Path | None = None) -> Path | None:
        """Loads `path`, or the newest checkpoint of this run's folder; returns what it loaded."""
        if path is None:
            found = list_step_checkpoints(self.out_dir / "checkpoints")
            if not found:
                return None
            path = found[-1]
        self.load_state_dict(load_training_checkpoint(path, map_location=self.device))
        log.info("resumed from %s at step %d (epoch %d)", path, self.step, self.epoch)
        return Path(path)

    def export_serving(self, path: str | Path | None = None) -> Path:
        self.watch.check()
        path = Path(path) if path else self.out_dir / "generator.pt"
        return atomic_save(serving_payload(self.method, to_container(self.cfg), self.step, self.ema), path)
