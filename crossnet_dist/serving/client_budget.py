"""Replica time per client: one client cannot keep every model replica busy.

A few bytes can ask for a lot of work (a 2 KB PNG declaring 4096 x 4096 px costs seconds of decoding and,
at `resolution=full`, of forwards), so the limit is on the work, not on requests or bytes. Each client
(its address, or the first X-Forwarded-For address behind a trusted proxy) has a bucket of replica
seconds, refilled at `serve.client_replica_s_per_s` up to `serve.client_burst_s`. A translation is
charged an estimate when it is admitted (its pixels times the measured seconds per pixel of its
resolution, so a burst of concurrent requests is charged before any finishes) and corrected to the
replica time it really took (decode, its share of the batch's forward, encode) when it returns. A
client whose bucket is empty gets `429 rate_limited` with Retry-After until it refills.

The buckets live in the ingress replica: with topology split (one ingress) they are global; with
topology single each replica keeps its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Callable

from crossnet_dist.serving.requests import RequestRejected

MAX_CLIENTS = 65536  # buckets kept; the least recently seen go first (a forgotten client starts full)


class ClientBudgets:
    def __init__(self, rate_s_per_s: float, burst_s: float, now: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.now = float(rate_s_per_s), float(burst_s), now
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (seconds left, at)
        self._seconds_per_pixel: dict[str, float] = {}  # resolution -> running estimate
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def admit(self, client: str, pixels: int, resolution: str) -> float:
        """Charges the estimate of a translation; returns it (for `settle`). Raises 429 when the
        client's bucket is empty."""
        if not self.enabled:
            return 0.0
        with self._lock:
            left = self._refilled(client)
            if left <= 0:
                wait = math.ceil(-left / self.rate) if left < 0 else 1
                raise RequestRejected(
                    429, "rate_limited",
                    f"this client used its share of replica time ({self.rate:g} s per s, bursts of {self.burst:g} s: "
                    f"serve.client_replica_s_per_s, client_burst_s); retry in {wait} s",
                    headers={"Retry-After": str(wait)})
            estimate = pixels * self._seconds_per_pixel.get(resolution, 0.0)
            self._buckets[client] = (left - estimate, self.now())
            return estimate

    def settle(self, client: str, estimate: float, spent_s: float, pixels: int, resolution: str) -> None:
        """Replaces the estimate by the replica time the translation took; learns the cost per pixel."""
        if not self.enabled:
            return
        with self._lock:
            left = self._refilled(client)
            self._buckets[client] = (left + estimate - spent_s, self.now())
            per_pixel = spent_s / max(pixels, 1)
            old = self._seconds_per_pixel.get(resolution)
            self._seconds_per_pixel[resolution] = per_pixel if old is None else 0.8 * old + 0.2 * per_pixel

    def _refilled(self, client: str) -> float:
        left, at = self._buckets.pop(client, (self.burst, self.now()))
        self._buckets[client] = (left, at)  # most recently seen last
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return min(self.burst, left + (self.now() - at) * self.rate)


def client_address(scope_client: tuple[str, int] | None, forwarded_for: str | None, trust_forwarded: bool) -> str:
    """Who is asking: the first X-Forwarded-For address when the proxy in front is trusted to set it
    (serve.trust_forwarded_for), else the connection's address."""
    if trust_forwarded and forwarded_for:
        first = forwarded_for.split(",", 1)[0].strip()
        if first:
            return first
    return scope_client[0] if scope_client else "unknown"
