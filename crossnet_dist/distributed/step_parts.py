"""Where a data-parallel step's time goes (`dist.profile_steps`, ZeRO-0): what bench/train_scaling.py
feeds the scaling model and checks it against.

Each engine's update is split into its parts, per rank:
  backward    the backward pass alone (DeepSpeed's own all-reduce after it is switched off)
  wait        a barrier before the all-reduce: the time this rank waits for the slower one
  allreduce   `engine.allreduce_gradients()`: the gradient all-reduce itself, bucketed as DeepSpeed does
  optimizer   `engine.step()`: Adam on the averaged gradients
  batch_sync  the trainer's per-step all-reduce of "every rank has a batch" (where the ranks also
              wait for one another between the steps' engine updates)
The trainer adds the whole `train_step` (forward passes included) and the process's CPU seconds; rank 0
adds the CPU seconds the whole machine spent (what the workers did not spend was Ray's own processes).
The barrier costs one small collective per engine and step, about the all-reduce latency.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable

PARTS = ("backward", "wait", "allreduce", "optimizer", "batch_sync")


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (every process, all cores)."""
    import psutil

    t = psutil.cpu_times()
    return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))


class StepParts:
    def __init__(self, world_size: int, sync: Callable[[], None] = lambda: None):
        self.world_size = world_size
        self.sync = sync  # a device synchronisation, so GPU times are not launch times
        self.sums = dict.fromkeys(PARTS, 0.0)

    def backward_step(self, engine, loss, before_step: Callable[[], None] = lambda: None) -> None:
        """engine.backward + engine.step with the all-reduce taken out and timed on its own."""
        import torch.distributed as tdist

        clock = time.perf_counter
        engine.enable_backward_allreduce = False
        t0 = clock()
        engine.backward(loss)
        self.sync()
        t1 = clock()
        if self.world_size > 1 and engine.is_gradient_accumulation_boundary():
            tdist.barrier()
            t2 = clock()
            engine.allreduce_gradients()
            self.sync()
        else:
            t2 = t1
        before_step()
        t3 = clock()
        engine.step()
        self.sync()
        t4 = clock()
        for key, seconds in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            self.sums[key] += seconds

    @contextlib.contextmanager
    def timed(self, part: str):
        t0 = time.perf_counter()
        yield
        self.sums[part] += time.perf_counter() - t0

    def take(self) -> dict[str, float]:
        """The sums since the last take (seconds), then zeroed."""
        out = {f"part_{k}_s": v for k, v in self.sums.items()}
        self.sums = dict.fromkeys(PARTS, 0.0)
        return out


class StepProfiler:
    """The parts of every step of a log window, for the trainer's metrics (perf/part_*_s and the rest)."""

    def __init__(self, world_size: int, groups, sync: Callable[[], None] = lambda: None):
        self.parts = StepParts(world_size, sync)
        for group in groups:  # DeepSpeedOptimizerGroup: its backward_step goes through the parts
            group.parts = self.parts
        self.start_window()

    def start_window(self) -> None:
        self.train_step_s = self.cpu_s = 0.0
        self.machine_cpu0 = machine_cpu_seconds()
        self.parts.take()

    @contextlib.contextmanager
    def step(self):
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.train_step_s += time.perf_counter() - wall
        self.cpu_s += time.process_time() - cpu  # this process's CPU seconds, all its threads

    def window_values(self) -> list[float]:
        """This rank's sums, to be summed over the ranks (one all-reduce)."""
        return [*self.parts.take().values(), self.train_step_s, self.cpu_s]

    def metrics(self, summed: list[float], world_size: int, steps: int) -> dict[str, float]:
        """Per step: each part and train_step as the mean over ranks; CPU seconds of all workers
        together, and of the whole machine as rank 0 sees it (one node's worth)."""
        n = max(steps, 1)
        names = [f"perf/part_{k}_s" for k in PARTS] + ["perf/train_step_s"]
        out = {name: v / world_size / n for name, v in zip(names, summed[:-1])}
        out["perf/workers_cpu_s"] = summed[-1] / n
        out["perf/machine_cpu_s"] = (machine_cpu_seconds() - self.machine_cpu0) / n
        return out
