"""Adaptive instance normalisation (Huang & Belongie 2017) with externally predicted parameters."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class AdaIN(nn.Module):
    """IN(x) * (1 + gamma) + beta, per sample and channel; gamma, beta come from `set_params`.

    (1 + gamma) rather than gamma keeps a freshly initialised translator near plain instance norm.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.gamma: Tensor | None = None
        self.beta: Tensor | None = None

    @property
    def n_params(self) -> int:
        return 2 * self.channels

    def set_params(self, params: Tensor) -> None:
        self.gamma, self.beta = params[:, : self.channels], params[:, self.channels :]

    def forward(self, x: Tensor) -> Tensor:
        if self.gamma is None:
            raise RuntimeError("AdaIN parameters not set: call set_params first")
        gamma, beta = self.gamma[:, :, None, None], self.beta[:, :, None, None]
        return F.instance_norm(x) * (1 + gamma) + beta


def assign_adain_params(module: nn.Module, params: Tensor) -> None:
    """Splits a (N, total) parameter tensor over the AdaIN layers of `module`, in order."""
    start = 0
    for layer in module.modules():
        if isinstance(layer, AdaIN):
            layer.set_params(params[:, start : start + layer.n_params])
            start += layer.n_params
    if start != params.shape[1]:
        raise ValueError(f"got {params.shape[1]} AdaIN parameters, the layers take {start}")


def count_adain_params(module: nn.Module) -> int:
    return sum(layer.n_params for layer in module.modules() if isinstance(layer, AdaIN))
