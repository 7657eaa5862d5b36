"""Which images each rank and DataLoader worker reads, in which order, for an epoch.

The epoch stream is a seeded permutation of the larger domain; each position is paired with
an image of the other domain (a permutation if both are the same size, else a random draw,
as in the CycleGAN reference's unaligned data set). Rank r takes positions r, r + W, r + 2W...
(the last n % W positions of an epoch are left out, so every rank gets the same count); the
rank's stream is cut into batches, and batch k goes to worker k % num_workers, which is the
order in which a DataLoader hands batches back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EpochPlan:
    a_index: np.ndarray  # per epoch position: the image of domain A
    b_index: np.ndarray  # per epoch position: the image of domain B


def epoch_plan(n_a: int, n_b: int, seed: int, epoch: int) -> EpochPlan:
    rng = np.random.default_rng([seed, epoch])
    n = max(n_a, n_b)
    a_larger = n_a >= n_b
    primary = rng.permutation(n)
    n_other = n_b if a_larger else n_a
    other = rng.permutation(n_other) if n_other == n else rng.integers(0, n_other, size=n)
    return EpochPlan(primary, other) if a_larger else EpochPlan(other, primary)


def samples_per_rank(n: int, world_size: int) -> int:
    return n // world_size


def rank_positions(n: int, rank: int, world_size: int, start_index: int = 0) -> np.ndarray:
    """Epoch positions of this rank's stream, skipping its first `start_index`."""
    count = samples_per_rank(n, world_size)
    return np.arange(rank, count * world_size, world_size)[start_index:]


def worker_batches(positions: np.ndarray, batch_size: int, worker_id: int, num_workers: int) -> list[np.ndarray]:
    batches = [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]
    return batches[worker_id::num_workers]


def sample_seed(seed: int, epoch: int, position: int) -> np.random.Generator:
    """The augmentation RNG of one sample: the same whichever rank or worker reads it."""
    return np.random.default_rng([seed, epoch, int(position), 0xC0FFEE])


def group_batches(batches: list, min_images: int, images_per_batch: int) -> list[list]:
    """Consecutive batches grouped so that each group reads at least `min_images` images at once."""
    per_group = max(1, -(-min_images // max(images_per_batch, 1)))
    return [batches[i : i + per_group] for i in range(0, len(batches), per_group)]
