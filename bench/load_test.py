"""The locust scenario (bench/locustfile.py) against a local endpoint on 127.0.0.1, bounded in time.

    python bench/load_test.py                          # tiny CrossNet, 16 users, 30 s
    python bench/load_test.py --users 32 --seconds 60 --checkpoint runs/x/generator.pt

Starts the endpoint (`crossnet serve`'s start_endpoint) on a local Ray, runs locust headless in its
own process (locust patches the standard library with gevent; Ray must not share it), prints
requests, failures (by reason), throughput and latency percentiles from locust's CSV, and stops the
endpoint. To load a real deployment, run locust on the locustfile directly (its docstring says how).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local benchmark only

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LOCUSTFILE = REPO / "bench" / "locustfile.py"
PERCENTILES = ("50%", "95%", "99%")


def run_locust(url: str, users: int, seconds: int, out_dir: Path, extra: tuple[str, ...] = ()) -> dict:
    """Runs the scenario against `url` (127.0.0.1 only) and returns {"rows": {name: stats}, "failures":
    [(name, reason, count)]} from locust's CSV files."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"bench/load_test.py loads 127.0.0.1 only, not {url}: run locust -f {LOCUSTFILE} yourself")
    prefix = out_dir / "locust"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", url, "--headless", "-u", str(users),
               "-r", str(users), "--run-time", f"{seconds}s", "--csv", str(prefix), "--only-summary",
               "--stop-timeout", "10", "--exit-code-on-error", "0", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, cwd=out_dir)
    if done.returncode != 0:
        raise RuntimeError(f"locust exited {done.returncode}: {done.stderr[-2000:]}")
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    with open(f"{prefix}_failures.csv", newline="") as f:
        failures = [(row["Name"], row["Error"], int(row["Occurrences"])) for row in csv.DictReader(f)]
    return {"rows": rows, "failures": failures}


def summary_lines(result: dict) -> list[str]:
    lines = [f"{'request':<20} {'n':>6} {'failed':>6} {'req/s':>7} " + " ".join(f"{'p' + p[:-1]:>6}" for p in PERCENTILES)
             + "  (ms)"]
    for name, row in result["rows"].items():
        lines.append(f"{name:<20} {row['Request Count']:>6} {row['Failure Count']:>6} {float(row['Requests/s']):>7.1f} "
                     + " ".join(f"{row[p]:>6}" for p in PERCENTILES))
    lines += [f"failed: {name}: {reason} x{count}" for name, reason, count in result["failures"]]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="generator.pt (default: train a tiny CrossNet for 2 steps)")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("overrides", nargs="*", help="serve.* overrides, e.g. serve.max_batch_size=16")
    args = parser.parse_args()
    from bench.serve import tiny_checkpoint
    from crossnet_dist.config import load_config
    from crossnet_dist.ports import free_port
    from crossnet_dist.serving.server import start_endpoint, stop_endpoint

    workdir = Path(tempfile.mkdtemp(prefix="crossnet-load-"))
    checkpoint = args.checkpoint or str(tiny_checkpoint(workdir))
    cfg = load_config(None, ["serve.cpus_per_replica=1", f"serve.port={free_port()}", *args.overrides])
    endpoint = start_endpoint(checkpoint, cfg.serve, num_cpus=4)
    try:
        result = run_locust(endpoint.url, args.users, args.seconds, workdir)
    finally:
        stop_endpoint(endpoint)
    print(f"locust, {args.users} users for {args.seconds} s against {endpoint.url} ({checkpoint}; "
          f"{os.cpu_count()} CPUs; batches of up to {cfg.serve.max_batch_size})")
    print("\n".join(summary_lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
