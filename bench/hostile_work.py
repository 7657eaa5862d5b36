"""One client sending cheap bytes that cost a lot of work, against another client's latency, with and
without the per-client replica-time budget (serve.client_replica_s_per_s), on 127.0.0.1 only.

    python bench/hostile_work.py --seconds 30

The attacker posts a 4096 x 4096 PNG of about 2 KB (one colour) back to back from 2 threads; the victim
posts a 256 x 256 photo once every 0.2 s. Two Serve applications on one local Ray, one model replica each,
the same tiny checkpoint: "open" (no budget) and "budgeted" (jobs/configs/serve.yaml's budget: half a
replica second per second, bursts of 10 s). Printed: the victim's p50/p99 alone (the baseline, measured in this
run), beside the attacker, and the ratios; the attacker's answers by status.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.serve import input_png, percentile, serve_apps, tiny_checkpoint  # noqa: E402


def hostile_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (4096, 4096), 1).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def post(url: str, data: bytes, client: str) -> int:
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "image/png", "X-Forwarded-For": client})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:  # nosec B310 - 127.0.0.1 only
            answer.read()
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def victim(url: str, seconds: float) -> list[float]:
    data, latencies, end = input_png(256), [], time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        assert post(url, data, "198.51.100.1") == 200
        latencies.append(time.perf_counter() - start)
        time.sleep(0.2)
    return latencies


def attack(url: str, seconds: float, statuses: Counter) -> None:
    data, end = hostile_png(), time.monotonic() + seconds
    while time.monotonic() < end:
        statuses[post(url, data, "203.0.113.66")] += 1


def scenario(url: str, seconds: float, attacked: bool) -> tuple[list[float], Counter]:
    statuses: Counter = Counter()
    attackers = [threading.Thread(target=attack, args=(url, seconds, statuses)) for _ in range(2 if attacked else 0)]
    for thread in attackers:
        thread.start()
    latencies = victim(url, seconds)
    for thread in attackers:
        thread.join()
    return latencies, statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(f"attacker's image: 4096 x 4096, {len(hostile_png())} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = str(tiny_checkpoint(Path(tmp)))
        from crossnet_dist.config import load_config

        shipped = load_config(str(REPO / "jobs" / "configs" / "serve.yaml")).serve
        budget = [f"serve.client_replica_s_per_s={shipped.client_replica_s_per_s}",
                  f"serve.client_burst_s={shipped.client_burst_s}"]
        print(f"budgeted: {' '.join(budget)} (jobs/configs/serve.yaml)")
        trusted = "serve.trust_forwarded_for=true"
        base = serve_apps({"open": (checkpoint, [trusted]), "budgeted": (checkpoint, [trusted, *budget])})
        for name in ("open", "budgeted"):
            url = f"{base}/{name}/translate?direction=a2b"
            alone, _ = scenario(url, args.seconds, attacked=False)
            attacked, statuses = scenario(url, args.seconds, attacked=True)
            p50, p99 = percentile(alone, 0.5), percentile(alone, 0.99)
            q50, q99 = percentile(attacked, 0.5), percentile(attacked, 0.99)
            print(f"{name:9s} victim alone p50 {p50 * 1e3:7.1f} ms p99 {p99 * 1e3:7.1f} ms | attacked p50 "
                  f"{q50 * 1e3:7.1f} ms p99 {q99 * 1e3:7.1f} ms | ratio p50 {q50 / p50:6.1f}x p99 {q99 / p99:6.1f}x"
                  f" | attacker answers {dict(sorted(statuses.items()))}", flush=True)
    import ray

    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
