"""Translation at an image's own resolution, whole or in overlapping tiles.

The generators are fully convolutional, so an image of any size translates at its own resolution once
its sides are multiples of 2**n_downsampling: it is reflect-padded up to them and the output cropped
back. An image too large for memory is translated in overlapping square tiles; each output pixel is
the weighted mean of the tiles covering it, with weights that ramp linearly from the tile edges over
the overlap, so seams blend instead of showing a grid. The networks' activations never exceed one
tile's (peak memory set by `tile`, not by the image); the image's own input and output buffers are the
only image-sized memory.

Instance normalisation makes a tile's statistics its own: tiled and untiled translations of the same
image differ a little, most in flat regions (bounded in tests/test_full_resolution.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pads an N x C x H x W batch on the bottom and right to multiples of `multiple` (replicate
    where a side is too small to reflect); returns it and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


@torch.no_grad()
def translate_whole(method, x: Tensor, direction: str, multiple: int) -> Tensor:
    """One N x 3 x H x W batch through the translator at its own size."""
    padded, (h, w) = pad_to_multiple(x, multiple)
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


@torch.no_grad()
def translate_tiled(method, x: Tensor, direction: str, multiple: int, tile: int, overlap: int) -> Tensor:
    """A 1 x 3 x H x W image in overlapping tiles of `tile` px (a multiple of `multiple`) sharing at least
    `overlap` px; the result is on x's device."""
    if tile % multiple:
        raise ValueError(f"tile {tile} is not a multiple of {multiple} (2**model.n_downsampling)")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be >= 0 and smaller than the tile ({tile})")
    _, _, h, w = x.shape
    if h <= tile and w <= tile:
        return translate_whole(method, x, direction, multiple)
    out = torch.zeros_like(x)
    total = torch.zeros(1, 1, h, w, device=x.device)
    for top in tile_starts(h, tile, overlap):
        for left in tile_starts(w, tile, overlap):
            patch = x[..., top : top + tile, left : left + tile]
            y = translate_whole(method, patch, direction, multiple).float()
            ph, pw = y.shape[-2:]
            weight = blend_weights(tile, overlap, x.device)[:ph, :pw]
            out[..., top : top + ph, left : left + pw] += y * weight
            total[..., top : top + ph, left : left + pw] += weight
    return out / total
