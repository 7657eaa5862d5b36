"""The single-process training checkpoint ("crossnet-dist/train"): its writer and reader, and the
step files' names (`checkpoints/step_XXXXXXXX.pt` in the run folder, the last `keep` kept).

The file format (atomic writes, checked loads) is checkpoints/files.py's; the DeepSpeed checkpoint
of distributed runs is distributed/checkpoint.py's.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from crossnet_dist.checkpoints.files import FORMAT_VERSION, TRAIN_FORMAT, atomic_save, load_checked
from crossnet_dist.config import to_container
from crossnet_dist.training.ema import build_ema

log = logging.getLogger(__name__)

_STEP_FILE = re.compile(r"^step_(\d{8})\.pt$")


def training_state(trainer) -> dict[str, Any]:
    """Everything a training.loop.Trainer needs to continue where it stopped."""
    return {
        "format": TRAIN_FORMAT,
        "version": FORMAT_VERSION,
        "method": trainer.method.name,
        "config": to_container(trainer.cfg),
        "step": trainer.step,
        "epoch": trainer.epoch,
        "epoch_step": trainer.epoch_step,
        "generators": trainer.method.generators.state_dict(),
        "discriminators": trainer.method.discriminators.state_dict(),
        "g_optim": trainer.g_opt.state_dict(),
        "d_optim": trainer.d_opt.state_dict(),
        "pools": {d: pool.state_dict() for d, pool in trainer.pools.items()},
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "torch_rng": torch.get_rng_state(),
    }


def restore_training_state(trainer, state: dict[str, Any]) -> None:
    if state["method"] != trainer.method.name:
        raise ValueError(f"checkpoint is for method {state['method']!r}, config says {trainer.method.name!r}")
    trainer.method.generators.load_state_dict(state["generators"])
    trainer.method.discriminators.load_state_dict(state["discriminators"])
    trainer.g_opt.load_state_dict(state["g_optim"])
    trainer.d_opt.load_state_dict(state["d_optim"])
    for d, pool in trainer.pools.items():
        pool.load_state_dict(state["pools"][d])
        pool.to(trainer.device)
    if trainer.ema is not None:
        if state.get("ema") is not None:
            trainer.ema.load_state_dict(state["ema"])
        else:  # a checkpoint of a run without EMA: the average starts at its weights
            trainer.ema = build_ema(trainer.method, trainer.cfg.train.ema_decay)
            log.info("the checkpoint has no EMA weights; the average starts from its weights")
    trainer.step, trainer.epoch, trainer.epoch_step = state["step"], state["epoch"], state["epoch_step"]
    torch.set_rng_state(state["torch_rng"])


def save_training_checkpoint(trainer, folder: str | Path, keep: int) -> Path:
    path = atomic_save(training_state(trainer), step_checkpoint_path(folder, trainer.step))
    prune_step_checkpoints(folder, keep)
    return path


def load_training_checkpoint(path: str | Path, map_location="cpu") -> dict[str, Any]:
    return load_checked(path, TRAIN_FORMAT, map_location=map_location)


def step_checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.pt"


def list_step_checkpoints(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _STEP_FILE.match(p.name))


def prune_step_checkpoints(folder: str | Path, keep: int) -> None:
    if keep <= 0:
        return
    for old in list_step_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
