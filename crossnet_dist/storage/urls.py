"""URLs to filesystems: `s3://bucket/prefix` through s3fs, `file:///path` or a plain path on local disk."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit

from fsspec import AbstractFileSystem
from fsspec.asyn import sync
from fsspec.implementations.local import LocalFileSystem

from crossnet_dist.storage.credentials import s3_settings

log = logging.getLogger(__name__)


class StorageError(OSError):
    """A storage URL is malformed, unreachable or empty; the message names the URL."""


S3_SCHEMES = ("s3", "s3a")

# Our retry helper owns retries (so they are counted and bounded by StorageConfig.retries):
# botocore and s3fs are told to try each request once.
_SINGLE_ATTEMPT = {"retries": {"total_max_attempts": 1}}


def is_s3_url(url: str) -> bool:
    return urlsplit(str(url)).scheme in S3_SCHEMES


def s3_options(storage_cfg: Any = None) -> dict[str, Any]:
    """s3fs constructor options from `s3_settings`.

    The region goes into the botocore Config, never into client_kwargs: s3fs turns a
    client_kwargs region into a LocationConstraint that local S3 servers reject at bucket creation.
    key/secret None lets botocore read AWS_ACCESS_KEY_ID and friends itself.
    """
    settings = s3_settings(storage_cfg)
    return {
        "endpoint_url": settings.endpoint_url,
        "key": settings.key,
        "secret": settings.secret,
        # a new retries dict per client: botocore adds to the one it is given
        "config_kwargs": {"retries": dict(_SINGLE_ATTEMPT["retries"]), "region_name": settings.region,
                          "connect_timeout": settings.connect_timeout_s, "read_timeout": settings.read_timeout_s},
        "skip_instance_cache": True,  # a new client per call, never one cached in a parent process
    }


def open_url(url: str, storage_cfg: Any = None) -> tuple[AbstractFileSystem, str]:
    """Returns (filesystem, root path inside it) for `url`; the root has no trailing slash."""
    url = str(url)
    parts = urlsplit(url)
    if parts.scheme in S3_SCHEMES:
        import s3fs

        root = (parts.netloc + parts.path).rstrip("/")
        if not parts.netloc:
            raise StorageError(f"{url}: an S3 URL needs a bucket, e.g. s3://bucket/prefix")
        fs = s3fs.S3FileSystem(**s3_options(storage_cfg), session=_process_session())
        fs.retries = 1  # see _SINGLE_ATTEMPT
        return fs, root
    if parts.scheme == "file":
        return LocalFileSystem(auto_mkdir=True), os.path.abspath(parts.path).rstrip("/") or "/"
    if parts.scheme == "":
        return LocalFileSystem(auto_mkdir=True), os.path.abspath(url).rstrip("/") or "/"
    raise StorageError(f"{url}: unsupported URL scheme {parts.scheme!r}; use s3://bucket/prefix, file:///path or a path")


@contextmanager
def opened(url: str, storage_cfg: Any = None) -> Iterator[tuple[AbstractFileSystem, str]]:
    """open_url for a short job in a process that may fork later (listing, uploading): the
    client is closed on exit, so no half-dead client is inherited by DataLoader workers."""
    fs, root = open_url(url, storage_cfg)
    try:
        yield fs, root
    finally:
        close_filesystem(fs)


def close_filesystem(fs: AbstractFileSystem) -> None:
    """Closes an s3fs client now, on its own event loop. Left to the garbage collector, it may
    be closed inside a forked worker, on that worker's loop, which fails noisily."""
    creator = getattr(fs, "_s3creator", None)
    if creator is None or getattr(fs, "_s3", None) is None:
        return
    try:
        sync(fs.loop, creator.__aexit__, None, None, None, timeout=5)
    except Exception as err:  # noqa: BLE001 - closing is best effort
        log.debug("closing %r failed: %s", fs, err)
    fs._s3 = None


_SESSION: dict[int, Any] = {}


def _process_session():
    """One botocore session per process: a new one re-reads the service models (0.1-1 s per client)."""
    import aiobotocore.session

    pid = os.getpid()
    if pid not in _SESSION:
        _SESSION.clear()  # a forked child must not reuse its parent's
        _SESSION[pid] = aiobotocore.session.AioSession()
    return _SESSION[pid]


def display_url(fs: AbstractFileSystem, path: str) -> str:
    """The URL a user would type for `path` inside `fs` (for messages)."""
    if isinstance(fs, LocalFileSystem):
        return path
    return fs.unstrip_protocol(path)


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])
