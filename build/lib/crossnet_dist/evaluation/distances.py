"""Frechet and kernel (MMD, cubic polynomial kernel) distances between two feature sets.

The math is torch-fidelity's (the FID of Heusel et al. and the KID of Binkowski et al., as
their reference code computes them); this module only adapts it to small evaluation sets:
the KID subset size shrinks to the smaller set when that holds fewer than 1000 images.
"""

from __future__ import annotations

from torch import Tensor

KID_SUBSET_SIZE = 1000  # torch-fidelity's default
KID_SUBSETS = 100


def frechet_distance(features_1: Tensor, features_2: Tensor) -> float:
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    _check(features_1, features_2, minimum=2)
    stats_1 = fid_features_to_statistics(features_1.double().cpu())
    stats_2 = fid_features_to_statistics(features_2.double().cpu())
    return max(0.0, fid_statistics_to_metric(stats_1, stats_2, verbose=False)[KEY_METRIC_FID])


def kernel_distance(
    features_1: Tensor, features_2: Tensor, subset_size: int = KID_SUBSET_SIZE, subsets: int = KID_SUBSETS, seed: int = 2020
) -> tuple[float, float]:
    """Mean and standard deviation of the unbiased MMD^2 over random subsets."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    _check(features_1, features_2, minimum=2)
    size = min(subset_size, len(features_1), len(features_2))
    out = kid_features_to_metric(
        features_1.double().cpu(), features_2.double().cpu(),
        kid_subsets=subsets, kid_subset_size=size, verbose=False, rng_seed=seed,
        kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
    )
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def _check(features_1: Tensor, features_2: Tensor, minimum: int) -> None:
    if features_1.dim() != 2 or features_2.dim() != 2 or features_1.shape[1] != features_2.shape[1]:
        raise ValueError(f"feature sets must be N x D with the same D: {tuple(features_1.shape)} vs {tuple(features_2.shape)}")
    if min(len(features_1), len(features_2)) < minimum:
        raise ValueError(f"distances need at least {minimum} images per set, got {len(features_1)} and {len(features_2)}")
