"""Loss terms summed over a logging window without a host-device sync per step."""

from __future__ import annotations

import torch
from torch import Tensor


class LossWindow:
    """Sums of each step's detached loss terms, kept as tensors where they were computed.

    Reading a GPU scalar (`float(t)`, `t.item()`) makes the host wait for the GPU queue to drain;
    doing that for a dozen terms every step stops the CPU from queueing the next step's kernels
    while the current ones run. Here the sums stay on the device and are read once per window
    with a single transfer (`means`)."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.steps = 0

    def add(self, terms: dict[str, Tensor]) -> None:
        for key, value in terms.items():
            value = value.detach().float()
            self.sums[key] = value if key not in self.sums else self.sums[key] + value
        self.steps += 1

    def means(self) -> dict[str, float]:
        """{term: mean over the window's steps} as floats: the one sync of the window."""
        if not self.sums:
            return {}
        keys = sorted(self.sums)
        values = (torch.stack([self.sums[k] for k in keys]) / self.steps).tolist()
        return dict(zip(keys, values))

    def reset(self) -> None:
        self.sums, self.steps = {}, 0
