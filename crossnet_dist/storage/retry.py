"""Retries for transient storage errors: connection failures, timeouts and 5xx answers.

Permanent errors (4xx: missing key, access denied, bad request) are never retried.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

# errno values s3fs gives 5xx answers (500 -> EREMOTEIO, 503 SlowDown -> EBUSY) and the
# socket-level failures of a server that restarts or drops connections.
_TRANSIENT_ERRNOS = {
    getattr(errno, "EREMOTEIO", errno.EIO), errno.EBUSY, errno.ETIMEDOUT, errno.ECONNRESET,
    errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE, errno.EHOSTUNREACH, errno.ENETUNREACH,
}
_TRANSIENT_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling", "ThrottlingException"}


class StorageUnavailableError(OSError):
    """A transient storage error outlasted every retry; the message names the URL."""


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5  # retries after the first failure; 0 = fail at once
    backoff_s: float = 0.2  # first wait, doubled each retry
    max_backoff_s: float = 10.0

    @classmethod
    def from_config(cls, storage_cfg: Any = None) -> "RetryPolicy":
        if storage_cfg is None:
            return cls()
        get = storage_cfg.get if hasattr(storage_cfg, "get") else lambda k, d=None: getattr(storage_cfg, k, d)
        return cls(retries=int(get("retries", 5)), backoff_s=float(get("retry_backoff_s", 0.2)))

    def delays(self) -> Iterator[float]:
        for attempt in range(self.retries):
            yield min(self.backoff_s * 2**attempt, self.max_backoff_s)


def http_status(err: BaseException) -> int | None:
    """The HTTP status of a botocore ClientError anywhere in the cause chain, if any."""
    for cause in _cause_chain(err):
        response = getattr(cause, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status:
                return int(status)
    return None


def is_transient(err: BaseException) -> bool:
    """True for errors worth retrying: connection trouble, timeouts, 5xx, throttling."""
    status = http_status(err)
    if status is not None:
        return status >= 500 or status == 429
    for cause in _cause_chain(err):
        if isinstance(cause, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
            return False
        if isinstance(cause, (ConnectionError, TimeoutError, asyncio.TimeoutError, socket.timeout)):
            return True
        if _is_network_library_error(cause):
            return True
        response = getattr(cause, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") in _TRANSIENT_CODES:
            return True
        if isinstance(cause, OSError) and cause.errno in _TRANSIENT_ERRNOS:
            return True
    return False


def call_with_retries(
    fn: Callable[[], T], policy: RetryPolicy, what: str, on_retry: Callable[[BaseException], None] | None = None
) -> T:
    """Calls `fn` until it succeeds, retrying transient errors with exponential back-off.

    `what` names the URL in the error raised once the retries are used up.
    """
    delays = policy.delays()
    while True:
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - classified below, re-raised if permanent
            if not is_transient(err):
                raise
            delay = next(delays, None)
            if delay is None:
                raise StorageUnavailableError(
                    f"{what}: storage still failing after {policy.retries} retries: {describe(err)}"
                ) from err
            log.warning("%s: transient storage error (%s); retrying in %.2fs", what, describe(err), delay)
            if on_retry is not None:
                on_retry(err)
            time.sleep(delay)


def describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _cause_chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_network_library_error(err: BaseException) -> bool:
    """botocore connection/timeout errors, aiohttp connection errors and fsspec timeouts."""
    module = type(err).__module__
    names = {cls.__name__ for cls in type(err).__mro__}
    if module.startswith("botocore") or module.startswith("aiobotocore"):
        return bool(names & {"ConnectionError", "HTTPClientError", "ReadTimeoutError", "ConnectTimeoutError", "ResponseStreamingError"})
    if module.startswith("aiohttp"):
        return bool(names & {"ClientConnectionError", "ServerDisconnectedError", "ClientPayloadError", "ServerTimeoutError"})
    return "FSTimeoutError" in names
