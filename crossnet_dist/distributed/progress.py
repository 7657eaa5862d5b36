"""Progress of a distributed run, seen from the driver, and the count of steps lost to failures.

Rank 0 pushes its step after every step and its metrics at every report to a small actor (no
CPU reserved) that the driver created; the driver polls it and draws a progress bar. The actor
outlives worker-group restarts, so it knows how far the run got before a failure: when the new
workers resume from a checkpoint at step S, `restored(S)` returns the steps lost (done after S
by the failed group), which the workers add to their reported `fault/lost_steps`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ray


class ProgressBoard:
    def __init__(self, total_steps: int | None):
        self.total_steps = total_steps
        self.max_step = 0  # furthest step any worker group got to in this driver session
        self.step = 0  # the current group's step
        self.metrics: dict[str, float] = {}
        self.reports = 0
        self.lost_steps = 0
        self.restarts = 0
        self.events: list[str] = []
        self.groups = 0  # worker groups started in this session
        self.stop_reason: str | None = None  # set by the driver (e.g. on SIGTERM); rank 0 polls it each step
        self._history: list[dict[str, float]] = []

    def push_step(self, step: int) -> None:
        self.step = step
        self.max_step = max(self.max_step, step)

    def push_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.push_step(step)
        self.metrics = dict(metrics)
        self.reports += 1
        self._history.append({"step": step, **metrics})

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def stop_requested(self) -> str | None:
        return self.stop_reason

    def history(self, start: int = 0) -> list[dict[str, float]]:
        """The reports rank 0 made in this driver session from the start-th on, oldest first
        (restarts included)."""
        return self._history[start:]

    def group_started(self, restored_step: int) -> tuple[int, int]:
        """Rank 0 of a new worker group, which resumed at `restored_step` (0 = from scratch).
        The first group of a driver session loses nothing we know of; a later one is a restart
        after a failure and lost the steps the failed group did past its checkpoint.
        Returns (steps lost by this restart, restarts so far)."""
        lost = 0
        if self.groups:
            lost = max(0, self.max_step - restored_step)
            self.restarts += 1
            self.lost_steps += lost
            self.events.append(f"worker group restarted: resumed at step {restored_step}, {lost} steps lost")
        elif restored_step:
            self.events.append(f"resumed run at step {restored_step}")
        self.groups += 1
        self.step = restored_step
        return lost, self.restarts

    def snapshot(self) -> dict[str, Any]:
        events, self.events = self.events, []
        return {
            "step": self.step, "max_step": self.max_step, "total": self.total_steps, "metrics": self.metrics,
            "reports": self.reports,
            "lost_steps": self.lost_steps, "restarts": self.restarts, "events": events,
        }


def create_board(total_steps: int | None):
    return ray.remote(num_cpus=0)(ProgressBoard).remote(total_steps)


class ProgressPrinter:
    """A background thread on the driver that polls the board and shows progress (a tqdm bar on a
    terminal, a line per report otherwise)."""

    def __init__(self, board, total: int | None, enabled: bool = True, interval_s: float = 0.5):
        self.board, self.total, self.enabled, self.interval_s = board, total, enabled, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crossnet-progress", daemon=True)
        self.last: dict[str, Any] = {}

    def __enter__(self) -> "ProgressPrinter":
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import sys

        if sys.stderr.isatty():
            self._run_bar()
        else:
            self._run_lines()

    def _poll(self) -> dict[str, Any] | None:
        try:
            snap = ray.get(self.board.snapshot.remote(), timeout=10)
        except Exception:  # the cluster is going away; the run's result tells the rest
            return None
        self.last = snap
        return snap

    def _run_lines(self) -> None:
        """One line per report (for logs: `ray job logs`, CI)."""
        seen = 0
        while True:
            stopping = self._stop.wait(self.interval_s)
            snap = self._poll()
            if snap is None:
                break
            for event in snap["events"]:
                print(f"[crossnet] {event}", flush=True)
            if snap["reports"] != seen:
                try:
                    new = ray.get(self.board.history.remote(seen), timeout=10)
                except Exception:
                    break
                seen += len(new)
                for metrics in new:
                    line = _summary({**snap, "metrics": metrics})
                    print(f"[crossnet] step {metrics['step']}/{self.total or '?'} {line}", flush=True)
            if stopping:
                break

    def _run_bar(self) -> None:
        from tqdm import tqdm

        bar = tqdm(total=self.total, desc="train (ray)", unit="step", dynamic_ncols=True)
        try:
            while not self._stop.is_set():
                snap = self._poll()
                if snap is None:
                    break
                for event in snap["events"]:
                    bar.write(event)
                bar.n = snap["step"]
                bar.set_postfix_str(_summary(snap), refresh=False)
                bar.refresh()
                time.sleep(self.interval_s)
        finally:
            bar.close()


def _summary(snap: dict[str, Any]) -> str:
    m = snap["metrics"]
    parts = [f"{k.split('/')[-1]}={m[k]:.3f}" for k in ("loss/G_total", "loss/D_total") if k in m]
    if "perf/images_per_s" in m:
        parts.append(f"img/s={m['perf/images_per_s']:.1f}")
    if "perf/step_time_s" in m:
        parts.append(f"step_s={m['perf/step_time_s']:.3f}")
    if m.get("data/images_skipped"):
        parts.append(f"skipped={int(m['data/images_skipped'])}")
    if snap["lost_steps"]:
        parts.append(f"lost_steps={snap['lost_steps']}")
    return " ".join(parts)
