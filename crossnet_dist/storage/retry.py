"""Retries for transient storage errors: connection failures, timeouts and 5xx answers.

Permanent errors (4xx: missing key, access denied, bad request) are never retried.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
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
    """Retries of a transient storage error: at most `retries` of them, within `budget_s` seconds.

    Back-off is exponential with full jitter (a uniform draw in [0, min(max_backoff_s, backoff_s * 2^n)],
    as AWS recommends): many workers retrying a throttled bucket do not retry in step. The defaults ride
    out about two minutes of outage.
    """

    retries: int = 100  # retries after the first failure; 0 = fail at once
    backoff_s: float = 0.2  # ceiling of the first wait, doubled each retry
    max_backoff_s: float = 10.0
    budget_s: float = 120.0  # time spent waiting between attempts before giving up
    jitter: bool = True

    @classmethod
    def from_config(cls, storage_cfg: Any = None) -> "RetryPolicy":
        if storage_cfg is None:
            return cls()
        get = storage_cfg.get if hasattr(storage_cfg, "get") else lambda k, d=None: getattr(storage_cfg, k, d)
        return cls(retries=int(get("retries", cls.retries)), backoff_s=float(get("retry_backoff_s", cls.backoff_s)),
                   budget_s=float(get("retry_budget_s", cls.budget_s)))

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits before each retry; ends when the count or the time budget is used up."""
        draw = (rng or random).uniform
        waited = 0.0
        for attempt in range(self.retries):
            ceiling = min(self.backoff_s * 2**attempt, self.max_backoff_s)
            delay = min(draw(0.0, ceiling) if self.jitter else ceiling, self.budget_s - waited)
            if delay < 0 or waited >= self.budget_s:
                return
            waited += delay
            yield delay

    def describe(self) -> str:
        return f"{self.retries} retries / {self.budget_s:g} s (data.storage.retries, retry_budget_s)"


class RetryClock:
    """The retries of one operation: what was retried, for how long, for the final error message."""

    def __init__(self, policy: RetryPolicy):
        self.policy, self.delays, self.count, self.start = policy, policy.delays(), 0, time.monotonic()

    def next_delay(self) -> float | None:
        delay = next(self.delays, None)
        if delay is not None:
            self.count += 1
        return delay

    def exhausted(self, what: str, err: BaseException, reads: int = 1) -> StorageUnavailableError:
        many = f" ({reads} reads)" if reads > 1 else ""
        return StorageUnavailableError(
            f"{what}: storage still failing after {self.count} retries over {time.monotonic() - self.start:.0f} s"
            f"{many}, the limit of {self.policy.describe()}: {describe(err)}"
        )


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
    """Calls `fn` until it succeeds, retrying transient errors with jittered exponential back-off.

    `what` names the URL in the error raised once the retries or their time budget are used up.
    """
    clock = RetryClock(policy)
    while True:
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - classified below, re-raised if permanent
            if not is_transient(err):
                raise
            delay = clock.next_delay()
            if delay is None:
                raise clock.exhausted(what, err) from err
            log.warning("%s: transient storage error (%s); retry %d in %.2fs", what, describe(err), clock.count, delay)
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
        return bool(
            names & {"ConnectionError", "HTTPClientError", "ReadTimeoutError", "ConnectTimeoutError", "ResponseStreamingError"}
        )
    if module.startswith("aiohttp"):
        return bool(names & {"ClientConnectionError", "ServerDisconnectedError", "ClientPayloadError", "ServerTimeoutError"})
    return "FSTimeoutError" in names
