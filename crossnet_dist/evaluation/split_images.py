"""The images of one split (val or test, under a local path or s3:// URL), in memory.

Evaluation sets are small (hundreds of images), so each domain is read whole through the
storage package's filesystem helpers, resized to the model's square size, and kept as one
uint8 tensor. Unreadable images are skipped and counted, never fatal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from crossnet_dist.images import ImageDecodeError, decode_image

log = logging.getLogger(__name__)


@dataclass
class DomainImages:
    names: list[str]
    pixels: torch.Tensor  # N x 3 x S x S uint8
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8, rounded like a saved PNG."""
    return images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu()


def to_unit_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1] (the networks' input range)."""
    return pixels.float().div(127.5).sub(1.0)


def read_domain(data_url: str, split: str, domain: str, image_size: int, storage_cfg=None, max_images: int = 0) -> DomainImages:
    """One domain of a split (train, val or test: data/splits.py), read whole."""
    from crossnet_dist.data.errors import DatasetError
    from crossnet_dist.data.splits import relative_name, split_folder, split_image_keys
    from crossnet_dist.storage import RetryPolicy, StorageError, display_url, fetch_many, open_url

    fs, root = open_url(data_url, storage_cfg)
    policy = RetryPolicy.from_config(storage_cfg)
    folder = split_folder(root, split, domain)
    try:
        listing = split_image_keys(fs, root, split, (domain,), policy, max_images)[domain]
    except DatasetError as err:
        raise StorageError(f"split {split!r}, domain {domain.upper()}: {err}") from None
    contents = fetch_many(fs, listing, policy)
    names, arrays, skipped = [], [], {}
    for path in listing:
        name = relative_name(folder, path)
        data = contents[path]
        try:
            if isinstance(data, BaseException):
                raise ImageDecodeError(f"{display_url(fs, path)}: cannot read ({data})")
            image = decode_image(data, display_url(fs, path)).resize((image_size, image_size), Image.Resampling.BICUBIC)
        except ImageDecodeError as err:
            skipped[name] = str(err)
            log.warning("skipped %s", err)
            continue
        names.append(name)
        arrays.append(np.asarray(image, dtype=np.uint8))
    if not arrays:
        raise StorageError(f"{display_url(fs, folder)}: none of its {len(listing)} images could be read")
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return DomainImages(names, pixels, skipped)
