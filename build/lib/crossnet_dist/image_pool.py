"""History of generated images for the discriminators (Shrivastava et al. 2017)."""

from __future__ import annotations

import random

import torch
from torch import Tensor


class ImagePool:
    """Holds up to `size` past generated images; each query returns, per image, the new one or,
    with probability 1/2 once full, a stored one (which the new image then replaces)."""

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.images: list[Tensor] = []
        self.rng = random.Random(seed)  # nosec B311 - sampling the history of fakes, not security

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() < 0.5:
                idx = self.rng.randrange(self.size)
                out.append(self.images[idx].clone())
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"images": [t.cpu() for t in self.images], "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.images = list(state["images"])
        self.rng.setstate(state["rng"])

    def to(self, device) -> "ImagePool":
        self.images = [t.to(device) for t in self.images]
        return self
