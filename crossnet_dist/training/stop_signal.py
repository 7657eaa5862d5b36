"""SIGTERM ends training the way the schedule's end does: after the current step, with a checkpoint.

Kubernetes, spot-instance reclaims and job schedulers stop a job with SIGTERM and a grace period
before SIGKILL. Inside `stop_on_sigterm`, the first SIGTERM only asks the epoch loop to stop
(`EpochTrainer.stop_requested`); the loop finishes the step it is in and `fit` writes its checkpoint
and serving file as at the end. A second SIGTERM ends the process at once (the default action).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def stop_on_sigterm(trainer) -> Iterator[None]:
    """Sets `trainer.stop_requested = "SIGTERM"` on the first SIGTERM (main thread only: elsewhere a
    no-op, as Python delivers signals to the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame) -> None:
        if trainer.stop_requested is not None:  # asked twice: stop now
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        trainer.stop_requested = "SIGTERM"
        log.warning("SIGTERM: stopping after step %d with a checkpoint (a second SIGTERM stops at once)", trainer.step)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
