"""Differentiable augmentation of what a discriminator sees (Zhao et al., "Differentiable Augmentation
for Data-Efficient GAN Training", NeurIPS 2020, sec. 3: the same random transform family applied to
real and generated images, in both the discriminator's and the generator's update, so that the
generator's gradient flows through it). With a few thousand images a discriminator memorises the
training set; augmenting its inputs keeps its gradients informative.

Policies (comma-separated, in this order): color (brightness, saturation, contrast), translation
(shift by up to 1/8 of the side, zero fill), cutout (one square of half the side set to zero).
Images are in [-1, 1]; zero is mid-grey.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """"translation,cutout" -> ("translation", "cutout"); "" -> (). Unknown names raise ValueError."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}: expected a comma-separated subset of {', '.join(POLICIES)}")
    return names


def diff_augment(x: Tensor, policy: tuple[str, ...]) -> Tensor:
    for name in POLICIES:
        if name in policy:
            x = _AUGMENTS[name](x)
    return x


def _rand(x: Tensor, *shape: int) -> Tensor:
    return torch.rand(x.shape[0], *shape, device=x.device, dtype=x.dtype)


def color(x: Tensor) -> Tensor:
    x = x + (_rand(x, 1, 1, 1) - 0.5)  # brightness, in [-1, 1] units as the reference's [0, 1] x 2
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x, 1, 1, 1) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, 1, 1, 1) + 0.5) + mean  # contrast


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    n, _, h, w = x.shape
    max_y, max_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    shift_y = torch.randint(-max_y, max_y + 1, (n, 1, 1), device=x.device)
    shift_x = torch.randint(-max_x, max_x + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + shift_y  # source row of each output row
    cols = torch.arange(w, device=x.device).view(1, 1, w) + shift_x
    padded = F.pad(x, (1, 1, 1, 1))  # a zero border that out-of-range sources read
    rows = (rows + 1).clamp(0, h + 1).expand(n, h, w)
    cols = (cols + 1).clamp(0, w + 1).expand(n, h, w)
    index = (rows * (w + 2) + cols).view(n, 1, h * w).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, index).view_as(x)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    centre_y = torch.randint(0, h + (1 - size_y % 2), (n, 1, 1), device=x.device)
    centre_x = torch.randint(0, w + (1 - size_x % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = centre_y - size_y // 2, centre_x - size_x // 2  # the square may reach past an edge
    inside = (ys >= top) & (ys < top + size_y) & (xs >= left) & (xs < left + size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_AUGMENTS = {"color": color, "translation": translation, "cutout": cutout}
