"""PIL image -> tensor in [-1, 1]: the CycleGAN `resize_and_crop` recipe for training,
a plain resize for evaluation."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from crossnet_dist.images import pil_to_tensor


def train_transform(image: Image.Image, load_size: int, crop_size: int, flip: bool, rng: np.random.Generator) -> torch.Tensor:
    """Resize to load_size x load_size, random crop_size crop, random horizontal flip."""
    image = image.resize((load_size, load_size), Image.Resampling.BICUBIC)
    x = int(rng.integers(0, load_size - crop_size + 1))
    y = int(rng.integers(0, load_size - crop_size + 1))
    image = image.crop((x, y, x + crop_size, y + crop_size))
    if flip and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return pil_to_tensor(image)


def eval_transform(image: Image.Image, size: int) -> torch.Tensor:
    """Deterministic: resize to size x size."""
    return pil_to_tensor(image.resize((size, size), Image.Resampling.BICUBIC))
