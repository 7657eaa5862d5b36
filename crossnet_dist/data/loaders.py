"""DataLoaders over the streaming data sets, built from a DataConfig (`cfg.data`)."""

from __future__ import annotations

import gc
import multiprocessing
from typing import Any, Iterator

from torch.utils.data import DataLoader

from crossnet_dist.data.stats import DataStats
from crossnet_dist.data.streams import ImageFolderStream, UnpairedImageStream


def worker_context() -> multiprocessing.context.BaseContext:
    """Loader workers start from a forkserver, not by forking the training process: that process runs
    threads (s3fs's IO loop, Ray's and torch's), and a child forked from it may inherit a heap another
    thread was changing (seen as "malloc(): unaligned fastbin chunk detected" in a worker). The server
    imports torch and the streams once, so each worker starts in milliseconds, not seconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "crossnet_dist.data.streams"])
    return context


class StreamingLoader(DataLoader):
    """A DataLoader over a batch-yielding stream (batch_size=None). Each batch it hands out has
    already been added to `self.stats` (totals since construction) and to the Prometheus
    counters of this process; `batch["stats"]` holds that batch's own counts."""

    def __init__(self, dataset, num_workers: int = 0, pin_memory: bool = False, prefetch_factor: int = 2):
        workers = num_workers > 0
        super().__init__(
            dataset,
            batch_size=None,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=workers,
            prefetch_factor=prefetch_factor if workers else None,
            multiprocessing_context=worker_context() if workers else None,
        )
        self.stats = DataStats()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.num_workers > 0 and self._iterator is None:
            # Workers are about to be forked: finalize dead s3fs clients here, on their own event
            # loop, rather than let each worker inherit and garbage-collect them on its loop.
            gc.collect()
        for batch in super().__iter__():
            self.stats.add(batch["stats"])
            yield batch

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        self.dataset.set_epoch(epoch, start_index)


def build_train_loader(
    data_cfg, image_size: int, seed: int, rank: int = 0, world_size: int = 1, pin_memory: bool = False
) -> StreamingLoader:
    """Training batches of `data_cfg.batch_size` unpaired images from data_cfg.root/trainA, trainB.

    Call `loader.dataset.set_epoch(epoch, start_index)` before each epoch (workers persist and
    pick it up when the next iteration starts)."""
    stream = UnpairedImageStream(
        data_cfg.root,
        data_cfg.storage,
        image_size=image_size,
        load_size=data_cfg.load_size,
        flip=data_cfg.flip,
        batch_size=data_cfg.batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
        split="train",
        max_images=data_cfg.max_images,
        read_ahead=data_cfg.read_ahead,
    )
    return StreamingLoader(stream, num_workers=data_cfg.num_workers, pin_memory=pin_memory)


def build_eval_loader(
    data_cfg,
    image_size: int,
    split: str = "test",
    domain: str | None = None,
    batch_size: int | None = None,
    max_images: int = 0,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int | None = None,
) -> StreamingLoader:
    """Deterministic evaluation batches of data_cfg.root/<split>A and/or <split>B: each image once,
    in sorted order, resized to image_size. `domain` "a" or "b" picks one; None yields all of A,
    then all of B (each batch says which in batch["domain"])."""
    stream = ImageFolderStream(
        data_cfg.root,
        data_cfg.storage,
        image_size=image_size,
        split=split,
        domains=(domain,) if domain else ("a", "b"),
        batch_size=batch_size or data_cfg.batch_size,
        rank=rank,
        world_size=world_size,
        max_images=max_images,
        read_ahead=data_cfg.read_ahead,
    )
    workers = data_cfg.num_workers if num_workers is None else num_workers
    return StreamingLoader(stream, num_workers=workers)
