"""Streaming data sets over a CycleGAN-layout root (trainA/ trainB/ testA/ testB/).

Both yield whole batches (use them with `batch_size=None` in a DataLoader, as the builders in
loaders.py do): a batch is made by one worker from consecutive positions of the rank's stream,
so `start_index` (samples already consumed) maps exactly onto batches to skip, reads of a
batch go out concurrently, and each batch carries the DataStats of the work that made it.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import IterableDataset, get_worker_info

from crossnet_dist.data.errors import DatasetError
from crossnet_dist.data.order import epoch_plan, group_batches, rank_positions, sample_seed, samples_per_rank, worker_batches
from crossnet_dist.data.reader import ImageReader
from crossnet_dist.data.splits import split_folder, split_image_keys
from crossnet_dist.data.stats import DataStats
from crossnet_dist.data.transforms import eval_transform, train_transform
from crossnet_dist.storage import RetryPolicy, opened
from crossnet_dist.storage.credentials import as_mapping


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


class UnpairedImageStream(IterableDataset):
    """Unpaired training batches {"a": [B,3,S,S], "b": [B,3,S,S], "stats": DataStats} in [-1, 1].

    Keys are listed once, here, in the constructing process; each rank reads its share of an
    epoch, each DataLoader worker its share of the rank's batches (see order.py).
    """

    def __init__(
        self,
        root: str,
        storage: Any = None,
        *,
        image_size: int,
        load_size: int,
        flip: bool = True,
        batch_size: int = 1,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        split: str = "train",
        max_images: int = 0,
        read_ahead: int = 16,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if load_size < image_size:
            raise ValueError(f"load_size {load_size} is smaller than the crop size {image_size}")
        self.root = root
        self.storage = dict(as_mapping(storage))
        self.policy = RetryPolicy.from_config(self.storage)
        with opened(root, self.storage) as (fs, root_path):  # workers open their own clients
            keys = split_image_keys(fs, root_path, split, ("a", "b"), self.policy, max_images)
            self.keys_a, self.keys_b = keys["a"], keys["b"]
        n = max(len(self.keys_a), len(self.keys_b))
        if samples_per_rank(n, world_size) == 0:
            raise DatasetError(f"{root}: {n} images per epoch cannot be shared among {world_size} ranks")
        self.image_size, self.load_size, self.flip = image_size, load_size, flip
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.read_ahead = read_ahead
        self.reader = ImageReader(root, self.storage, self.policy)
        # Shared with the DataLoader workers, which persist across epochs and read it at each epoch start.
        self._epoch_state = torch.zeros(2, dtype=torch.int64).share_memory_()

    # ---- epochs ------------------------------------------------------------------------------
    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        """Selects the epoch's shuffle; skips the first `start_index` samples of this rank's
        stream without reading them (to resume an epoch where a failed run stopped)."""
        if start_index < 0:
            raise ValueError(f"start_index must be >= 0, got {start_index}")
        self._epoch_state[0] = int(epoch)
        self._epoch_state[1] = int(start_index)

    @property
    def epoch(self) -> int:
        return int(self._epoch_state[0])

    @property
    def start_index(self) -> int:
        return int(self._epoch_state[1])

    def samples_per_epoch(self) -> int:
        """Samples this rank reads in a full epoch (corrupt images make it fewer)."""
        return samples_per_rank(max(len(self.keys_a), len(self.keys_b)), self.world_size)

    def batches_per_epoch(self) -> int:
        return -(-self.samples_per_epoch() // self.batch_size)

    # ---- iteration ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch, start_index = self.epoch, self.start_index
        worker_id, num_workers = _worker()
        plan = epoch_plan(len(self.keys_a), len(self.keys_b), self.seed, epoch)
        positions = rank_positions(len(plan.a_index), self.rank, self.world_size, start_index)
        batches = worker_batches(positions, self.batch_size, worker_id, num_workers)
        stats = DataStats()
        groups = group_batches(batches, self.read_ahead, 2 * self.batch_size)
        paths = ([key for batch in group for p in batch for key in self._pair_keys(plan, p)] for group in groups)
        for group, (images, read_stats) in zip(groups, self.reader.read_pipelined(paths)):
            stats.add(read_stats)
            for batch in group:
                a, b = [], []
                for position in batch:
                    key_a, key_b = self._pair_keys(plan, position)
                    if key_a not in images or key_b not in images:
                        continue  # counted as skipped by the reader
                    rng = sample_seed(self.seed, epoch, position)
                    a.append(train_transform(images[key_a], self.load_size, self.image_size, self.flip, rng))
                    b.append(train_transform(images[key_b], self.load_size, self.image_size, self.flip, rng))
                if a:
                    yield {"a": torch.stack(a), "b": torch.stack(b), "stats": stats.take()}

    def _pair_keys(self, plan, position: int) -> tuple[str, str]:
        return self.keys_a[plan.a_index[position]], self.keys_b[plan.b_index[position]]


class ImageFolderStream(IterableDataset):
    """Evaluation batches of one domain at a time, each image once, in sorted order, resized to
    image_size: {"a" or "b": [B,3,S,S], "domain": "a"|"b", "keys": [names], "stats": DataStats}.

    `domains=("a", "b")` yields every batch of A, then every batch of B.
    """

    def __init__(
        self,
        root: str,
        storage: Any = None,
        *,
        image_size: int,
        split: str = "test",
        domains: Sequence[str] = ("a", "b"),
        batch_size: int = 1,
        rank: int = 0,
        world_size: int = 1,
        max_images: int = 0,
        read_ahead: int = 16,
    ):
        unknown = [d for d in domains if d not in ("a", "b")]
        if unknown or not domains:
            raise ValueError(f"domains must be a non-empty selection of 'a', 'b'; got {list(domains)}")
        self.root = root
        self.storage = dict(as_mapping(storage))
        self.policy = RetryPolicy.from_config(self.storage)
        with opened(root, self.storage) as (fs, root_path):
            self.folders = {d: split_folder(root_path, split, d) for d in domains}
            self.keys = split_image_keys(fs, root_path, split, domains, self.policy, max_images)
        self.image_size, self.batch_size = image_size, batch_size
        self.rank, self.world_size, self.read_ahead = rank, world_size, read_ahead
        self.reader = ImageReader(root, self.storage, self.policy)

    def __len__(self) -> int:
        """Batches this rank yields (a DataLoader reports it as len(loader))."""
        return len(self._rank_batches())

    def _rank_batches(self) -> list[tuple[str, list[str]]]:
        batches = [
            (domain, keys[i : i + self.batch_size])
            for domain, keys in self.keys.items()
            for i in range(0, len(keys), self.batch_size)
        ]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker_id, num_workers = _worker()
        batches = self._rank_batches()[worker_id::num_workers]
        stats = DataStats()
        groups = group_batches(batches, self.read_ahead, self.batch_size)
        paths = ([key for _, keys in group for key in keys] for group in groups)
        for group, (images, read_stats) in zip(groups, self.reader.read_pipelined(paths)):
            stats.add(read_stats)
            for domain, keys in group:
                kept = [key for key in keys if key in images]
                if kept:
                    tensors = torch.stack([eval_transform(images[key], self.image_size) for key in kept])
                    names = [key[len(self.folders[domain]) + 1 :] for key in kept]
                    yield {domain: tensors, "domain": domain, "keys": names, "stats": stats.take()}
