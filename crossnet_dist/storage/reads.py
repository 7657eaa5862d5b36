"""Reading many objects at once, concurrently where the filesystem is async (s3fs), with retries."""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Sequence

from fsspec import AbstractFileSystem
from fsspec.asyn import sync

from crossnet_dist.storage.retry import RetryPolicy, StorageUnavailableError, describe, is_transient
from crossnet_dist.storage.urls import display_url

ReadResult = bytes | BaseException


def fetch_many(
    fs: AbstractFileSystem,
    paths: Sequence[str],
    policy: RetryPolicy,
    on_retry: Callable[[int], None] | None = None,
) -> dict[str, ReadResult]:
    """Reads `paths`; returns path -> bytes, or the permanent error (missing, forbidden) for that path.

    Transient failures are retried (only the failed paths) with the policy's back-off;
    `on_retry(n)` is told how many reads each retry round repeats. Raises
    StorageUnavailableError naming a URL once the retries are used up.
    """
    results: dict[str, ReadResult] = {}
    pending = list(dict.fromkeys(paths))
    delays = policy.delays()
    while pending:
        got = _read_once(fs, pending)
        failed = [p for p in pending if isinstance(got[p], BaseException) and is_transient(got[p])]
        results.update({p: got[p] for p in pending if p not in failed})
        if not failed:
            break
        delay = next(delays, None)
        if delay is None:
            first = failed[0]
            raise StorageUnavailableError(
                f"{display_url(fs, first)}: storage still failing after {policy.retries} retries "
                f"({len(failed)} reads): {describe(got[first])}"
            ) from got[first]  # type: ignore[misc]
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
