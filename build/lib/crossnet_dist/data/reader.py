"""Reads and decodes images from a data set root inside one process.

The filesystem is opened lazily, in the process that reads (a DataLoader worker), and
reopened after a fork: s3fs clients must not cross processes.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator, Sequence

from PIL import Image

from crossnet_dist.data.stats import DataStats
from crossnet_dist.images import ImageDecodeError, decode_image
from crossnet_dist.storage import RetryPolicy, display_url, fetch_many, open_url

log = logging.getLogger(__name__)


class ImageReader:
    def __init__(self, url: str, storage: dict[str, Any] | None, policy: RetryPolicy):
        self.url = url
        self.storage = storage
        self.policy = policy
        self._fs = None
        self._fs_pid: int | None = None
        self._bad: dict[str, str] = {}  # path -> reason, so a corrupt object is not fetched again

    @property
    def fs(self):
        if self._fs is None or self._fs_pid != os.getpid():
            self._fs = open_url(self.url, self.storage)[0]
            self._fs_pid = os.getpid()
        return self._fs

    def read(self, paths: Sequence[str], stats: DataStats) -> dict[str, Image.Image]:
        """Decoded RGB images by path; paths that are missing, unreadable or corrupt are left
        out, logged and counted in `stats` (never raised). Transient storage errors are retried;
        StorageUnavailableError is raised once the retries are used up."""
        images: dict[str, Image.Image] = {}
        wanted = []
        for path in dict.fromkeys(paths):
            if path in self._bad:
                stats.note_skip(display_url(self.fs, path), self._bad[path])
            else:
                wanted.append(path)
        if not wanted:
            return images

        def count_retries(n: int) -> None:
            stats.retries += n

        for path, result in fetch_many(self.fs, wanted, self.policy, on_retry=count_retries).items():
            url = display_url(self.fs, path)
            if isinstance(result, BaseException):
                self._skip(path, url, f"unreadable ({type(result).__name__}: {result})", stats)
                continue
            stats.bytes_read += len(result)
            try:
                images[path] = decode_image(result, url)
            except (ImageDecodeError, Image.DecompressionBombError) as err:
                self._skip(path, url, f"corrupt image ({err})".replace(f"{url}: ", ""), stats)
                continue
            stats.images_read += 1
        return images

    def read_pipelined(self, path_groups: Iterable[Sequence[str]]) -> Iterator[tuple[dict[str, Image.Image], DataStats]]:
        """`read` of each group in turn, with the next group fetched and decoded in a background
        thread while the caller transforms the current one. Yields (images, that read's DataStats)."""
        groups = iter(path_groups)

        def read_one(paths: Sequence[str]) -> tuple[dict[str, Image.Image], DataStats]:
            stats = DataStats()
            return self.read(paths, stats), stats

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-read-ahead") as pool:
            first = next(groups, None)
            pending = pool.submit(read_one, first) if first is not None else None
            while pending is not None:
                result = pending.result()
                following = next(groups, None)
                pending = pool.submit(read_one, following) if following is not None else None
                yield result

    def _skip(self, path: str, url: str, reason: str, stats: DataStats) -> None:
        log.warning("skipping %s: %s", url, reason)
        self._bad[path] = reason
        stats.note_skip(url, reason)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fs"], state["_fs_pid"] = None, None
        return state
