"""Offline translation of image files with a trained checkpoint (`crossnet translate`).

resolution="model" (the default): inputs of any size are resized to the model's training size,
translated, and the result is resized back to the input's size, so outputs line up with inputs.
resolution="full": each image is translated at its own resolution, whole or, larger than `tile` px,
in overlapping blended tiles (crossnet_dist/full_resolution.py); CrossNet and CycleGAN only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch
from PIL import Image

from crossnet_dist.images import IMAGE_SUFFIXES, ImageDecodeError, load_image, pil_to_tensor, tensor_to_pil
from crossnet_dist.methods import check_direction

log = logging.getLogger(__name__)


@dataclass
class TranslateReport:
    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # input -> reason


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders expanded to their image files (sorted, not recursive)."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files.extend(sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"input not found: {item}")
    return files


@torch.no_grad()
def translate_image(method, image: Image.Image, direction: str, image_size: int, device="cpu") -> Image.Image:
    return translate_images(method, [image], direction, image_size, device)[0]


class TranslateOptionError(ValueError):
    """A translation option that does not fit the checkpoint (resolution, tile, overlap)."""


RESOLUTIONS = ("model", "full")
FULL_RESOLUTION_METHODS = ("crossnet", "cyclegan")  # fully convolutional at any multiple of 2**n_downsampling


@dataclass(frozen=True)
class FullResolution:
    """How `translate_images` translates at the inputs' own size: `multiple` = 2**model.n_downsampling,
    tiles of `tile` px sharing `overlap` px (tile None = whole images)."""

    multiple: int
    tile: int | None = None
    overlap: int = 32
    min_side: int = 0  # smaller images are padded up to this (networks.shapes.min_image_side)

    @classmethod
    def for_model(cls, method, model_cfg, tile: int | None = None, overlap: int = 32) -> "FullResolution":
        if method.name not in FULL_RESOLUTION_METHODS:
            raise TranslateOptionError(f"full-resolution translation needs a fully convolutional translator "
                             f"({', '.join(FULL_RESOLUTION_METHODS)}); this checkpoint is {method.name!r}: "
                             "use resolution 'model'")
        multiple = 2 ** int(model_cfg.n_downsampling)
        if tile is not None and (tile < multiple or tile % multiple or not 0 <= overlap < tile):
            raise TranslateOptionError(f"tile must be a positive multiple of {multiple} larger than the overlap "
                             f"(got tile {tile}, overlap {overlap})")
        from crossnet_dist.networks.shapes import min_image_side

        return cls(multiple, tile, overlap, min_image_side(model_cfg))


@torch.no_grad()
def translate_images(method, images: list[Image.Image], direction: str, image_size: int, device="cpu",
                     full: FullResolution | None = None) -> list[Image.Image]:
    """Translated images, each the size of its input: through the model's training size, or with
    `full` at the input's own resolution."""
    check_direction(direction)
    if not images:
        return []
    if full is not None:
        from crossnet_dist.full_resolution import translate_tiled, translate_whole

        out = []
        for im in images:
            x = pil_to_tensor(im)[None].to(device)
            if full.tile is not None:
                y = translate_tiled(method, x, direction, full.multiple, full.tile, full.overlap, min_side=full.min_side)
            else:
                y = translate_whole(method, x, direction, full.multiple, full.min_side)
            out.append(tensor_to_pil(y[0]))
        return out
    batch = torch.stack(
        [pil_to_tensor(im.resize((image_size, image_size), Image.Resampling.BICUBIC)) for im in images]
    ).to(device)
    out = method.translate(batch, direction)
    return [tensor_to_pil(t).resize(im.size, Image.Resampling.BICUBIC) for t, im in zip(out, images)]


def translate_files(
    checkpoint: str | Path,
    direction: str,
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    device: str = "cpu",
    batch_size: int = 8,
    resolution: str = "model",
    tile: int | None = None,
    overlap: int = 32,
) -> TranslateReport:
    """Translates image files into `out_dir`. resolution: "model" or "full" (with `tile` px tiles
    sharing `overlap` px for images larger than the tile; tile None = whole images)."""
    from crossnet_dist.checkpoints.source import resolve_checkpoint
    from crossnet_dist.checkpoints.translator import load_translator

    check_direction(direction)
    if resolution not in RESOLUTIONS:
        raise TranslateOptionError(f"resolution must be one of {', '.join(RESOLUTIONS)} (got {resolution!r})")
    source = resolve_checkpoint(str(checkpoint))  # a local file, or a copy of an s3:// one
    try:
        method, cfg = load_translator(source.local_path, device)
    finally:
        source.discard_copy()
    full = FullResolution.for_model(method, cfg.model, tile, overlap) if resolution == "full" else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = TranslateReport()
    files = collect_inputs(inputs)
    for start in range(0, len(files), batch_size):
        chunk, images = [], []
        for path in files[start : start + batch_size]:
            try:
                images.append(load_image(path))
                chunk.append(path)
            except ImageDecodeError as err:
                report.skipped[str(path)] = str(err)
                log.warning("skipped %s", err)
        if not images:
            continue
        for path, result in zip(chunk, translate_images(method, images, direction, cfg.model.image_size, device, full)):
            target = out_dir / f"{path.stem}_{direction}.png"
            result.save(target)
            report.written.append(target)
    return report
