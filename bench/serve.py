"""Endpoint latency and throughput vs the bare model, in one run, on 127.0.0.1 only.

    python bench/serve.py                        # tiny CrossNet trained for 2 steps (32x32 model)
    python bench/serve.py --checkpoint runs/x/generator.pt --requests 200

Three Serve applications on one local Ray: "batched" (@serve.batch, serve.max_batch_size, 5 ms
wait), "unbatched" (max_batch_size=1) and "onnx" (batched, serve.backend=onnxruntime on the files
`crossnet export` writes from the same checkpoint), one model replica each. For 1, 4 and 16
concurrent clients it sends a bounded number of POST /translate requests (and stops a level after
--level-timeout seconds), then prints p50/p99 latency and throughput, and ratios against the bare
model measured in this process: the same image decoded, translated (resize + forward + resize) by the
replica's backend and PNG-encoded, without HTTP or Ray, sequentially; and onnx against batched torch.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local benchmark only

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONCURRENCY = (1, 4, 16)


def tiny_checkpoint(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from helpers import tiny_batches, tiny_config  # noqa: E402  (tests/helpers.py: real photo crops)

    from crossnet_dist.training.loop import Trainer

    Trainer(tiny_config(folder, "train.max_steps=2")).fit(tiny_batches(2))
    return folder / "run" / "generator.pt"


def input_png(size: int) -> bytes:
    from PIL import Image

    from crossnet_dist.images import encode_png

    sys.path.insert(0, str(REPO / "tests"))
    from helpers import sample_photo  # noqa: E402

    return encode_png(sample_photo("flower.jpg").resize((size, size), Image.Resampling.BICUBIC))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bare_model(checkpoint: Path, data: bytes, repeats: int, backend: str = "torch") -> dict[str, float]:
    """Sequential in-process translation of the same request: decode, the backend's translate, encode."""
    import torch

    from crossnet_dist.config import load_config
    from crossnet_dist.images import decode_image, encode_png
    from crossnet_dist.serving.deploy import serve_settings
    from crossnet_dist.serving.backends import build_backend

    torch.set_num_threads(1)  # as one serve replica with cpus_per_replica=1
    settings = serve_settings(load_config(None, ["serve.cpus_per_replica=1", f"serve.backend={backend}"]).serve)
    model = build_backend(str(checkpoint), settings, "cpu")
    times = []
    for i in range(repeats + 5):
        start = time.perf_counter()
        image = decode_image(data)
        encode_png(model.translate([image], "a2b", "model")[0])
        if i >= 5:  # warm-up
            times.append(time.perf_counter() - start)
    return {"p50": statistics.median(times), "p99": percentile(times, 0.99), "rps": len(times) / sum(times)}


def load(url: str, data: bytes, clients: int, requests: int, timeout_s: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    latencies: list[float] = []
    failures = 0

    def one(i: int):
        if time.monotonic() > deadline:
            return None
        direction = "a2b" if i % 2 == 0 else "b2a"
        request = urllib.request.Request(f"{url}/translate?direction={direction}", data=data,
                                         headers={"Content-Type": "image/png"}, method="POST")
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        except OSError:
            return False
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for result in pool.map(one, range(requests)):
            if result is False:
                failures += 1
            elif result is not None:
                latencies.append(result)
    elapsed = time.perf_counter() - start
    if not latencies:
        raise RuntimeError(f"{url}: no request succeeded ({failures} failed)")
    return {"p50": statistics.median(latencies), "p99": percentile(latencies, 0.99),
            "rps": len(latencies) / elapsed, "n": len(latencies), "failed": failures}


def measure(checkpoint: str | None = None, requests: int = 160, level_timeout: float = 30.0, input_size: int = 64,
            max_batch_size: int = 16) -> dict:
    """{"checkpoint", "bare": {p50, p99, rps}, "rows": [(app, clients, {p50, p99, rps, n, failed})],
    "batch": {metric: value}} for the batched and unbatched apps at 1, 4 and 16 clients."""
    import ray
    from ray import serve
    from ray.serve import RunTarget

    from crossnet_dist.config import load_config
    from crossnet_dist.serving.deploy import build_application
    from crossnet_dist.serving.server import connect_ray, wait_ready
    from crossnet_dist.storage.ports import free_port

    from crossnet_dist.export import export_checkpoint

    workdir = Path(tempfile.mkdtemp(prefix="crossnet-bench-serve-"))
    checkpoint = Path(checkpoint) if checkpoint else tiny_checkpoint(workdir)
    exported = workdir / "exported"
    for direction in ("a2b", "b2a"):
        export_checkpoint(str(checkpoint), "onnx", direction, str(exported / f"{direction}.onnx"))
    data = input_png(input_size)
    bare = {"torch": bare_model(checkpoint, data, 100), "onnx": bare_model(exported, data, 100, "onnxruntime")}
    port = free_port()
    settings = ["serve.cpus_per_replica=1", f"serve.max_ongoing_requests={max(32, max_batch_size)}", "serve.max_queued_requests=-1"]
    batched = load_config(None, [*settings, f"serve.max_batch_size={max_batch_size}", "serve.batch_wait_timeout_s=0.005"]).serve
    unbatched = load_config(None, [*settings, "serve.max_batch_size=1"]).serve
    onnx = load_config(None, [*settings, f"serve.max_batch_size={max_batch_size}", "serve.batch_wait_timeout_s=0.005",
                              "serve.backend=onnxruntime"]).serve
    connect_ray(num_cpus=4)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run_many([RunTarget(build_application(str(checkpoint), batched), name="batched", route_prefix="/batched"),
                        RunTarget(build_application(str(checkpoint), unbatched), name="unbatched", route_prefix="/unbatched"),
                        RunTarget(build_application(str(exported), onnx), name="onnx", route_prefix="/onnx")])
        base = f"http://127.0.0.1:{port}"
        rows = []
        for name in ("unbatched", "batched", "onnx"):
            url = f"{base}/{name}"
            wait_ready(url, None, 120)
            load(url, data, 4, 20, 10)  # warm-up
            for clients in CONCURRENCY:
                rows.append((name, clients, load(url, data, clients, requests, level_timeout)))
        batch_line = [line for line in urllib.request.urlopen(f"{base}/batched/metrics").read().decode().splitlines()
                      if line.startswith(("crossnet_serve_batch_size_sum", "crossnet_serve_batch_size_count"))]
    finally:
        ray.shutdown()
    return {"checkpoint": checkpoint, "bare": bare, "rows": rows,
            "batch": {line.split()[0]: float(line.split()[1]) for line in batch_line}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="generator.pt (default: train a tiny CrossNet for 2 steps)")
    parser.add_argument("--requests", type=int, default=160, help="requests per concurrency level (bounded)")
    parser.add_argument("--level-timeout", type=float, default=30.0, help="seconds at most per level")
    parser.add_argument("--input-size", type=int, default=64, help="side of the square PNG sent")
    parser.add_argument("--max-batch-size", type=int, default=16)
    args = parser.parse_args()
    r = measure(args.checkpoint, args.requests, args.level_timeout, args.input_size, args.max_batch_size)
    bare, rows = r["bare"], r["rows"]
    print(f"model: {r['checkpoint']}{' (tiny CrossNet, 32x32, 2 training steps)' if not args.checkpoint else ''}; "
          f"input {args.input_size}x{args.input_size} PNG; {os.cpu_count()} CPUs")
    for backend, b in bare.items():
        print(f"bare model, {backend:<5} (in process, sequential): p50 {b['p50'] * 1e3:.1f} ms  p99 {b['p99'] * 1e3:.1f} ms  "
              f"{b['rps']:.0f} img/s")
    print(f"\n{'mode':<10} {'clients':>7} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} "
          f"{'p50/bare':>9} {'req/s / bare':>13} {'vs unbatched':>13} {'onnx/torch':>11}")
    throughput = {(name, clients): result["rps"] for name, clients, result in rows}
    latency = {(name, clients): result["p50"] for name, clients, result in rows}
    for name, clients, result in rows:
        own = bare["onnx" if name == "onnx" else "torch"]
        versus = f"{throughput[(name, clients)] / throughput[('unbatched', clients)]:.2f}" if name != "unbatched" else ""
        onnx = (f"{throughput[('onnx', clients)] / throughput[('batched', clients)]:.2f} "
                f"{latency[('onnx', clients)] / latency[('batched', clients)]:.2f}" if name == "onnx" else "")
        print(f"{name:<10} {clients:>7} {result['n']:>5} {result['p50'] * 1e3:>8.1f} {result['p99'] * 1e3:>8.1f} "
              f"{result['rps']:>7.1f} {result['p50'] / own['p50']:>9.2f} {result['rps'] / own['rps']:>13.2f} {versus:>13} "
              f"{onnx:>11}")
        if result["failed"]:
            print(f"  ({result['failed']} requests failed)")
    print("(p50/bare and req/s / bare: against the same backend's bare model; onnx/torch: throughput, p50 latency "
          "of the onnx app over the batched torch app)")
    values = r["batch"]
    if values.get("crossnet_serve_batch_size_count"):
        print(f"\nbatched app: mean batch size {values['crossnet_serve_batch_size_sum'] / values['crossnet_serve_batch_size_count']:.2f}"
              f" over {values['crossnet_serve_batch_size_count']:.0f} batches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
