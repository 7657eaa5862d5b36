"""Translation at an image's own resolution, whole or in overlapping tiles.

The generators are fully convolutional, so an image of any size translates at its own resolution once
its sides are multiples of 2**n_downsampling: it is reflect-padded up to them and the output cropped
back. An image too large for memory is translated in overlapping square tiles; each output pixel is
the weighted mean of the tiles covering it, with weights that ramp linearly from the tile edges over
the overlap, so seams blend instead of showing a grid. The networks' activations never exceed one
tile's (peak memory set by `tile`, not by the image); the image's own input and output buffers are the
only image-sized memory.

Instance normalisation would give every tile statistics of its own (a tile of sky normalised alone
is not the sky of the whole photo), so tiles are normalised with the whole image's statistics: a first
pass translates the image shrunk to at most `stats_side` px (the whole image when it is smaller; its
memory, with the tile's, is the peak: 1024 px by default) and
records each instance norm's per-channel mean and variance; the tiles are then normalised with those.
The tiled result differs from the untiled one only near tile edges, where a convolution's padding
replaces the neighbouring tile's pixels, and the blending hides that (tests/test_full_resolution.py).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pad_to_multiple(x: Tensor, multiple: int, min_side: int = 0) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pads an N x C x H x W batch on the bottom and right to multiples of `multiple`, and to at
    least `min_side` (the smallest size the networks take: networks.shapes.min_image_side); replicate
    where a side is too small to reflect. Returns it and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = max(-h % multiple, min_side - h), max(-w % multiple, min_side - w)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


@torch.no_grad()
def translate_whole(method, x: Tensor, direction: str, multiple: int, min_side: int = 0) -> Tensor:
    """One N x 3 x H x W batch through the translator at its own size."""
    padded, (h, w) = pad_to_multiple(x, multiple, min_side)
    return method.translate(padded, direction)[..., :h, :w]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of `tile` px covering `size` px with at least `overlap` px shared by
    neighbours; the last tile ends at the edge."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def blend_weights(tile: int, overlap: int, device) -> Tensor:
    """tile x tile weights: 1 inside, a linear ramp over `overlap` px from each edge (never 0)."""
    ramp = torch.ones(tile, device=device)
    if overlap > 0:
        edge = (torch.arange(overlap, device=device, dtype=torch.float32) + 0.5) / overlap
        ramp[:overlap] = torch.minimum(ramp[:overlap], edge)
        ramp[-overlap:] = torch.minimum(ramp[-overlap:], edge.flip(0))
    return ramp[:, None] * ramp[None, :]


class SharedInstanceNorm:
    """Makes every nn.InstanceNorm2d of `module` record the statistics of its input ("record") or
    normalise with the recorded ones ("apply"), keyed by module and call order within a pass."""

    def __init__(self, module: nn.Module):
        self.norms = [m for m in module.modules() if isinstance(m, nn.InstanceNorm2d)]
        self.mode, self.stats, self.calls = "off", {}, 0

    @contextlib.contextmanager
    def installed(self):
        originals = [m.forward for m in self.norms]
        for m in self.norms:
            m.forward = self._forward(m)
        try:
            yield self
        finally:
            for m, forward in zip(self.norms, originals):
                m.forward = forward

    def start_pass(self, mode: str) -> None:
        self.mode, self.calls = mode, 0

    def _forward(self, m: nn.InstanceNorm2d):
        original = m.forward

        def forward(x: Tensor) -> Tensor:
            if self.mode == "off":
                return original(x)
            key, self.calls = self.calls, self.calls + 1
            if self.mode == "record":
                var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, unbiased=False)
                self.stats[key] = (mean, var)
            mean, var = self.stats[key]
            y = ((x.float() - mean) * torch.rsqrt(var + m.eps)).to(x.dtype)
            if m.affine:
                y = y * m.weight[None, :, None, None] + m.bias[None, :, None, None]
            return y

        return forward


@torch.no_grad()
def translate_tiled(method, x: Tensor, direction: str, multiple: int, tile: int, overlap: int,
                    stats_side: int | None = 1024, min_side: int = 0) -> Tensor:
    """A 1 x 3 x H x W image in overlapping tiles of `tile` px (a multiple of `multiple`) sharing at least
    `overlap` px, normalised with the statistics of the image shrunk to `stats_side` px (None: each tile
    with its own); the result is on x's device."""
    if tile % multiple:
        raise ValueError(f"tile {tile} is not a multiple of {multiple} (2**model.n_downsampling)")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be >= 0 and smaller than the tile ({tile})")
    _, _, h, w = x.shape
    if h <= tile and w <= tile:
        return translate_whole(method, x, direction, multiple, min_side)
    shared = SharedInstanceNorm(method)
    with shared.installed():
        if stats_side is not None:
            scale = min(1.0, stats_side / max(h, w))
            size = (max(1, round(h * scale)), max(1, round(w * scale)))  # a line of pixels keeps 1 px
            small = x if scale == 1.0 else F.interpolate(x, size=size, mode="bilinear", antialias=True)
            shared.start_pass("record")
            translate_whole(method, small, direction, multiple, min_side)
        out = torch.zeros_like(x)
        total = torch.zeros(1, 1, h, w, device=x.device)
        weights = blend_weights(tile, overlap, x.device)
        for top in tile_starts(h, tile, overlap):
            for left in tile_starts(w, tile, overlap):
                shared.start_pass("apply" if stats_side is not None else "off")
                patch = x[..., top : top + tile, left : left + tile]
                y = translate_whole(method, patch, direction, multiple, min_side).float()
                ph, pw = y.shape[-2:]
                weight = weights[:ph, :pw]
                out[..., top : top + ph, left : left + pw] += y * weight
                total[..., top : top + ph, left : left + pw] += weight
    return out / total
