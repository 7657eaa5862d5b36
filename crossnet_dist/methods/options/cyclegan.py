"""CycleGAN (papers/cyclegan.txt): the reference implementation's loss weights."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CycleGANLossWeights:
    """The CycleGAN reference defaults: lambda_A = lambda_B = 10, lambda_identity = 0.5."""

    gan: float = 1.0
    cycle: float = 10.0
    identity: float = 0.5  # relative to `cycle`, as in the reference implementation
