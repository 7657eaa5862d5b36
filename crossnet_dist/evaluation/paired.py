"""Paired metrics: a translation against the true counterpart of its input, where the split has one.

A pair is the same file name in testA/ and testB/ (the emoji set: the same emoji drawn by Google
and by Twitter). For direction a2b, the translation of testA/<name> is compared with
testB/<name> (b2a symmetrically) at the model size, RGB composited over white as every image is
read. Each metric comes with the do-nothing baseline (the input itself as the prediction) and
the ratio to it: a translator worth serving has paired_l1_ratio < 1 and paired_ssim_ratio > 1.

- paired_l1: mean absolute difference in the networks' [-1, 1] range (lower is better);
- paired_ssim: SSIM (scikit-image's `structural_similarity` with the Gaussian window of Wang et
  al. 2004: sigma 1.5, population covariance), per image over RGB, averaged (higher is better).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

PAIRS_MODES = ("auto", "none", "require")


class NoPairsError(ValueError):
    """eval.pairs=require on a split without pairs."""


def pair_indices(source_names: list[str], target_names: list[str]) -> dict[int, int]:
    """source index -> target index of the image with the same file name."""
    where = {name: j for j, name in enumerate(target_names)}
    return {i: where[name] for i, name in enumerate(source_names) if name in where}


def l1_per_image(pred: Tensor, truth: Tensor) -> np.ndarray:
    """uint8 N x 3 x S x S sets -> per-image mean |pred - truth| in the [-1, 1] range."""
    return (pred.float() - truth.float()).abs().div(127.5).flatten(1).mean(1).numpy()


def ssim_per_image(pred: Tensor, truth: Tensor) -> np.ndarray:
    from skimage.metrics import structural_similarity

    p = pred.permute(0, 2, 3, 1).numpy()
    t = truth.permute(0, 2, 3, 1).numpy()
    return np.array([
        structural_similarity(a, b, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for a, b in zip(p, t)
    ])


def paired_direction(inputs: Tensor, outputs: Tensor, targets: Tensor, pairs: dict[int, int], direction: str) -> dict[str, float]:
    src = torch.tensor(sorted(pairs), dtype=torch.long)
    dst = torch.tensor([pairs[i] for i in sorted(pairs)], dtype=torch.long)
    truth, pred, nothing = targets[dst], outputs[src], inputs[src]
    m: dict[str, float] = {}
    for name, per_image in (("l1", l1_per_image), ("ssim", ssim_per_image)):
        value, base = float(per_image(pred, truth).mean()), float(per_image(nothing, truth).mean())
        key = f"paired_{name}_{direction}"
        m[key], m[f"{key}_identity_baseline"] = value, base
        m[f"{key}_ratio"] = value / base if base else float("inf")
    return m


def paired_metrics(
    translations, images, direction_domains: dict[str, tuple[str, str]]
) -> tuple[dict[str, float], dict[str, int]]:
    """Paired metrics of every direction whose split has pairs, their means over both directions
    when both have them, and the pair counts."""
    m: dict[str, float] = {}
    counts: dict[str, int] = {}
    for direction, (src, dst) in direction_domains.items():
        pairs = pair_indices(images[src].names, images[dst].names)
        translations[direction].truth_of = pairs
        translations[direction].targets = images[dst].pixels
        if pairs:
            counts[direction] = len(pairs)
            m.update(paired_direction(images[src].pixels, translations[direction].outputs, images[dst].pixels, pairs, direction))
    if len(counts) == len(direction_domains):
        for name in ("l1", "ssim"):
            for suffix in ("", "_identity_baseline"):
                m[f"paired_{name}{suffix}"] = float(np.mean([m[f"paired_{name}_{d}{suffix}"] for d in direction_domains]))
            base = m[f"paired_{name}_identity_baseline"]
            m[f"paired_{name}_ratio"] = m[f"paired_{name}"] / base if base else float("inf")
    return m, counts
