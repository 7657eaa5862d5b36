"""Numeric precision and memory layout of a training step (`train.precision`, `train.channels_last`),
the same for both trainers.

bf16 is autocast (mixed precision), not bf16 weights: parameters, gradients, optimiser state and the
gradient all-reduce stay float32, the convolutions run in bf16, and every loss term is computed in
float32 (`crossnet_dist.losses`: an LSGAN square or an L1 mean over 10^5-10^6 bf16 elements keeps
only 8 mantissa bits). bf16 has float32's exponent range, so no loss scaling is needed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class StepPrecision:
    bf16: bool = False
    channels_last: bool = False

    @classmethod
    def from_config(cls, train_cfg, device: torch.device) -> "StepPrecision":
        """"auto" is bf16 on a CUDA device that supports it, fp32 elsewhere (on CPUs without AMX,
        bf16 convolutions are slower than fp32 ones)."""
        name = train_cfg.precision
        if name not in PRECISIONS:
            raise ValueError(f"config key 'train.precision': {name!r} is not one of {', '.join(PRECISIONS)}")
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        if name == "bf16" and device.type == "cuda" and not cuda_bf16:
            raise ValueError(f"config key 'train.precision': bf16 asked for, but {torch.cuda.get_device_name(device)} "
                             "has no bf16 support (use fp32)")
        bf16 = name == "bf16" or (name == "auto" and cuda_bf16)
        return cls(bf16=bf16, channels_last=bool(train_cfg.channels_last))

    @property
    def name(self) -> str:
        return ("bf16" if self.bf16 else "fp32") + ("+channels_last" if self.channels_last else "")

    def autocast(self, device_type: str):
        """The forward passes' context: bf16 autocast, or nothing."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)

    def prepare_module(self, module: nn.Module) -> nn.Module:
        """channels_last weights (NHWC convolutions: what cuDNN's and oneDNN's fastest kernels take)."""
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def prepare_batch(self, images: Tensor) -> Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images


FP32 = StepPrecision()
