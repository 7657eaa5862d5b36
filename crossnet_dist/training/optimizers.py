"""Optimiser groups: one per network group (generators, discriminators).

The training step only calls `backward_step(loss)`; a plain PyTorch group is defined here and the
distributed trainer supplies its own (a DeepSpeed engine) with the same methods.
"""

from __future__ import annotations

from typing import Iterable, Protocol

import torch
from torch import Tensor


class OptimizerGroup(Protocol):
    def backward_step(self, loss: Tensor) -> None: ...
    def end_epoch(self) -> None: ...
    @property
    def lr(self) -> float: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


def linear_decay(n_epochs: int, n_epochs_decay: int):
    """The CycleGAN schedule: constant for n_epochs, then linear decay towards 0 over n_epochs_decay."""

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)

    return factor


def group_lr(optim_cfg, group: str) -> float:
    """The base learning rate of a network group: "generators" or "discriminators" (optim.disc_lr_scale)."""
    return optim_cfg.lr * (optim_cfg.disc_lr_scale if group == "discriminators" else 1.0)


def adam(params: Iterable[torch.nn.Parameter], optim_cfg, group: str) -> torch.optim.Adam:
    return torch.optim.Adam(
        params, lr=group_lr(optim_cfg, group), betas=(optim_cfg.beta1, optim_cfg.beta2), foreach=True
    )


class TorchOptimizerGroup:
    """Adam + per-epoch LambdaLR, stepped once per backward."""

    def __init__(self, params: Iterable[torch.nn.Parameter], optim_cfg, group: str):
        self.optimizer = adam(params, optim_cfg, group)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, linear_decay(optim_cfg.n_epochs, optim_cfg.n_epochs_decay)
        )

    def backward_step(self, loss: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def end_epoch(self) -> None:
        self.scheduler.step()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def torch_optimizer_groups(method, optim_cfg) -> tuple[TorchOptimizerGroup, TorchOptimizerGroup]:
    """(generators, discriminators) of a method, each with its own Adam and schedule."""
    return (
        TorchOptimizerGroup(method.generators.parameters(), optim_cfg, "generators"),
        TorchOptimizerGroup(method.discriminators.parameters(), optim_cfg, "discriminators"),
    )
