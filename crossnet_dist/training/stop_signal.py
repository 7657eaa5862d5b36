"""SIGTERM ends training the way the schedule's end does: after the current step, with a checkpoint.

Kubernetes, spot-instance reclaims and job schedulers stop a job with SIGTERM and a grace period
before SIGKILL. Inside `stop_on_sigterm`, the first SIGTERM only asks training to stop: the local
trainer sets `EpochTrainer.stop_requested`; the distributed driver tells its progress board, which
the ranks consult at every step. The loop finishes the step it is in and writes its checkpoint and
serving file as at the end. A second SIGTERM ends the process at once (the default action).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Callable, Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def stop_on_sigterm(request_stop: Callable[[str], None]) -> Iterator[None]:
    """Calls `request_stop("SIGTERM")` on the first SIGTERM (main thread only: elsewhere a no-op, as
    Python delivers signals to the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    asked = []

    def handler(signum, frame) -> None:
        if asked:  # asked twice: stop now
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        asked.append(signum)
        log.warning("SIGTERM: training stops after the current step with a checkpoint (a second SIGTERM stops at once)")
        request_stop("SIGTERM")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
