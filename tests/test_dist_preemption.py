"""Distributed runs that end before their schedule: SIGTERM (how Kubernetes, spot reclaims and `ray job
stop` end a job) and train.max_minutes. The ranks stop together after a step and write a checkpoint of
that step. A real local Ray, 2 Ray Train workers with DeepSpeed ZeRO-2, the real image loader."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers import REPO, write_tiny_dataset

pytestmark = pytest.mark.slow


def train_command(data, storage, run_name: str, *overrides: str) -> list[str]:
    """`crossnet train` of the tiny distributed config on `data`, checkpointing only when it stops."""
    return [sys.executable, "-m", "crossnet_dist", "train", str(REPO / "jobs/configs/tiny_dist.yaml"),
            f"data.root={data}", f"dist.storage_path={storage}", f"dist.run_name={run_name}",
            "dist.checkpoint_every=1000", "data.batch_size=2", *overrides]


@pytest.mark.timeout(420)
def test_sigterm_makes_the_ranks_checkpoint_the_step_they_reached_and_exit_143(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train=16, n_test=1, size=36)
    storage = tmp_path / "ray"
    proc = subprocess.Popen(
        train_command(data, storage, "preempted", "train.max_steps=1000", "train.log_every=1"), cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    reached = lambda: any(re.match(r"\[crossnet\] step ([3-9]|\d\d+)/", line) for line in list(lines))  # noqa: E731
    deadline = time.monotonic() + 300
    while not reached() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reached(), "".join(lines)[-3000:]
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("still running 120 s after SIGTERM:\n" + "".join(lines)[-3000:]) from None
    assert proc.returncode == 143, "".join(lines)[-3000:]
    reader.join(timeout=10)
    out = "".join(lines)
    stopped = re.search(r"stopped by SIGTERM after step (\d+): checkpoint (\S+);", out)
    assert stopped, out[-3000:]
    step = int(stopped.group(1))
    assert 3 <= step < 1000 and "--resume preempted" in out and "Traceback" not in out
    assert (storage / "preempted" / f"step_{step:08d}").is_dir()
    assert (storage / "preempted" / "generator.pt").is_file()


@pytest.mark.timeout(300)
def test_a_time_limit_stops_the_ranks_together_with_a_checkpoint_of_the_last_step(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train=16, n_test=1, size=36)
    storage = tmp_path / "ray"
    done = subprocess.run(
        train_command(data, storage, "timed", "train.max_steps=0", "train.max_minutes=0.1", "optim.n_epochs=1000"),
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finished = re.search(r"done: run timed, (\d+) steps on 2 workers", done.stdout)
    assert finished and "stopped by" not in done.stdout, done.stdout[-3000:]
    step = int(finished.group(1))
    assert 0 < step < 1000 * 4  # far short of the schedule (1,000+ epochs of 4 steps)
    assert (storage / "timed" / f"step_{step:08d}").is_dir() and (storage / "timed" / "generator.pt").is_file()
