"""Retries for transient storage errors: connection failures, timeouts and 5xx answers.

Permanent errors (4xx: missing key, access denied, bad request) are never retried.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import socket
import threading
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
    """Retries of a transient storage error: at most `retries` of them, within `budget_s` seconds, and
    never past `budget_s` after storage last answered this process (see OutageClock).

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


class OutageClock:
    """Since when storage has failed every read of this process, whichever read it was.

    Each operation's retries have their own budget, so on their own, reads that start one after
    another (the next batch, the other domain, the checkpoint written on the way out) would each wait
    a full budget. All of them also stop once the outage (the time since storage last answered any
    read here) reaches the budget: a process gives up at most `retry_budget_s` plus one attempt
    (`connect_timeout_s` + `read_timeout_s`) after storage stopped answering. An outage is a run of
    failures at most `gap_s` apart (retrying reads fail at least every max back-off + one attempt):
    a failure after a longer quiet spell starts a new one.
    """

    def __init__(self, gap_s: float = 60.0, now: Callable[[], float] = time.monotonic) -> None:
        self.gap_s, self.now = gap_s, now
        self.reset()

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None
        self._last = 0.0

    def answered(self) -> None:
        with self._lock:
            self._since = None

    def failed(self, attempt_started: float | None = None) -> float:
        """Records a transient failure of an attempt that started at `attempt_started` (default: now);
        returns how long storage has been failing."""
        now = self.now()
        with self._lock:
            if self._since is None or now - self._last > self.gap_s:
                self._since = min(now, attempt_started if attempt_started is not None else now)
            self._last = now
            return now - self._since

    def failing_for(self) -> float:
        with self._lock:
            return 0.0 if self._since is None else self.now() - self._since


OUTAGE = OutageClock()
os.register_at_fork(after_in_child=OUTAGE.reset)  # a loader worker process keeps its own clock


class RetryClock:
    """The retries of one operation: what was retried, for how long, for the final error message."""

    def __init__(self, policy: RetryPolicy, outage: OutageClock = OUTAGE):
        self.policy, self.delays, self.count, self.start = policy, policy.delays(), 0, time.monotonic()
        self.outage = outage

    def next_delay(self, attempt_started: float | None = None) -> float | None:
        """The wait before the next retry, or None once this operation's retries, its budget or the
        process's outage budget are used up. Call it after each transient failure, with the time
        (time.monotonic) the failed attempt started."""
        left = self.policy.budget_s - self.outage.failed(attempt_started)
        delay = next(self.delays, None)
        if delay is None or left <= 0:
            return None
        self.count += 1
        return min(delay, left)

    def exhausted(self, what: str, err: BaseException, reads: int = 1) -> StorageUnavailableError:
        many = f" ({reads} reads)" if reads > 1 else ""
        return StorageUnavailableError(
            f"{what}: storage still failing after {self.count} retries over {time.monotonic() - self.start:.0f} s"
            f"{many} (no storage answer in this process for {self.outage.failing_for():.0f} s), the limit of "
            f"{self.policy.describe()}: {describe(err)}"
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
        started = time.monotonic()
        try:
            result = fn()
        except Exception as err:  # noqa: BLE001 - classified below, re-raised if permanent
            if not is_transient(err):
                raise
            delay = clock.next_delay(started)
            if delay is None:
                raise clock.exhausted(what, err) from err
            log.warning("%s: transient storage error (%s); retry %d in %.2fs", what, describe(err), clock.count, delay)
            if on_retry is not None:
                on_retry(err)
            time.sleep(delay)
        else:
            clock.outage.answered()
            return result


def own_message(err: BaseException) -> str:
    """The error's own message. One re-raised by a torch DataLoader worker process carries that worker's
    traceback ("Caught X in DataLoader worker process 1. Original Traceback ..."), whose last line is
    "module.X: message"."""
    text = str(err)
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    for prefix in (f"{type(err).__module__}.{type(err).__qualname__}: ", f"{type(err).__name__}: "):
        last = last.removeprefix(prefix)
    return last


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
