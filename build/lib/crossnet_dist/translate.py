"""Offline translation of image files with a trained checkpoint (`crossnet translate`).

Inputs of any size are resized to the model's training size, translated, and the result is
resized back to the input's size, so outputs line up with inputs.
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


@torch.no_grad()
def translate_images(method, images: list[Image.Image], direction: str, image_size: int, device="cpu") -> list[Image.Image]:
    check_direction(direction)
    if not images:
        return []
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
) -> TranslateReport:
    from crossnet_dist.training.checkpoint import load_translator
    from crossnet_dist.training.checkpoint_source import resolve_checkpoint

    check_direction(direction)
    source = resolve_checkpoint(str(checkpoint))  # a local file, or a copy of an s3:// one
    try:
        method, cfg = load_translator(source.local_path, device)
    finally:
        source.discard_copy()
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
        for path, result in zip(chunk, translate_images(method, images, direction, cfg.model.image_size, device)):
            target = out_dir / f"{path.stem}_{direction}.png"
            result.save(target)
            report.written.append(target)
    return report
