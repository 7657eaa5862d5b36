"""Reading many objects at once, concurrently where the filesystem is async (s3fs), with retries."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Sequence

from fsspec import AbstractFileSystem
from fsspec.asyn import sync

from crossnet_dist.storage.retry import RetryClock, RetryPolicy, describe, is_transient
from crossnet_dist.storage.urls import display_url

ReadResult = bytes | BaseException
log = logging.getLogger(__name__)


def fetch_many(
    fs: AbstractFileSystem,
    paths: Sequence[str],
    policy: RetryPolicy,
    on_retry: Callable[[int], None] | None = None,
) -> dict[str, ReadResult]:
    """Reads `paths`; returns path -> bytes, or the permanent error (missing, forbidden) for that path.

    Transient failures are retried (only the failed paths) with the policy's jittered back-off, each
    round logged; `on_retry(n)` is told how many reads each round repeats. Raises
    StorageUnavailableError naming a URL once the retries or their time budget are used up.
    """
    results: dict[str, ReadResult] = {}
    pending = list(dict.fromkeys(paths))
    clock = RetryClock(policy)
    while pending:
        started = time.monotonic()
        got = _read_once(fs, pending)
        failed = [p for p in pending if isinstance(got[p], BaseException) and is_transient(got[p])]
        results.update({p: got[p] for p in pending if p not in failed})
        if len(failed) < len(pending):
            clock.outage.answered()
        if not failed:
            break
        first = failed[0]
        delay = clock.next_delay(started)
        if delay is None:
            raise clock.exhausted(display_url(fs, first), got[first], len(failed)) from got[first]  # type: ignore[misc]
        log.warning("%s: %d reads failed (%s); retry %d in %.2fs", display_url(fs, first), len(failed),
                    describe(got[first]), clock.count, delay)
        if on_retry is not None:
            on_retry(len(failed))
        time.sleep(delay)
        pending = failed
    return results


def _read_once(fs: AbstractFileSystem, paths: list[str]) -> dict[str, ReadResult]:
    if getattr(fs, "async_impl", False):
        async def read_all() -> list[ReadResult]:
            return await asyncio.gather(*(fs._cat_file(p) for p in paths), return_exceptions=True)

        return dict(zip(paths, sync(fs.loop, read_all)))
    results: dict[str, ReadResult] = {}
    for path in paths:
        try:
            results[path] = fs.cat_file(path)
        except Exception as err:  # noqa: BLE001 - returned to the caller, which classifies it
            results[path] = err
    return results
