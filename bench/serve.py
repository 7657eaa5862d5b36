"""Endpoint latency and throughput vs the bare model, where a request's time goes, and the serving
targets, in one run, on 127.0.0.1 only (`make bench-serve`).

    python bench/serve.py                        # tiny CrossNet (32x32) + a full-width 64-px CrossNet
    python bench/serve.py --checkpoint runs/x/generator.pt --requests 200 --skip-full-width

Part 1, the tiny model: four Serve applications on one local Ray, one replica each with one CPU
thread: "unbatched" (max_batch_size=1), "batched" (@serve.batch, --batch-wait), "single" (batched, topology
single: ingress and model in one replica) and "onnx" (batched, serve.backend=onnxruntime on the files
`crossnet export` writes from the same checkpoint). For 1, 4 and 16 concurrent clients it sends a
bounded number of POST /translate requests, then prints p50/p99 latency and throughput against the
bare model measured in this process (the same image decoded, translated and PNG-encoded by the
replica's backend, sequentially, one thread), the breakdown of the 1-client requests (each answer's
Server-Timing header; the rest is the HTTP proxy and the client), and GET /healthz (the proxy and the
ingress alone).
Part 2, a full-width CrossNet at 64 px (untrained: speed only): batched vs unbatched at 16 clients,
where the forward dominates, beside what batching gives the bare forward in process.
"""

from __future__ import annotations

import argparse
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
APPS = ("unbatched", "batched", "single", "onnx")
PARTS = ("ingress", "hop", "decode", "queue", "forward", "encode")


def tiny_checkpoint(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from helpers import tiny_batches, tiny_config  # noqa: E402  (tests/helpers.py: real photo crops)

    from crossnet_dist.training.loop import Trainer

    Trainer(tiny_config(folder, "train.max_steps=2")).fit(tiny_batches(2))
    return folder / "run" / "generator.pt"


def full_width_checkpoint(folder: Path, image_size: int) -> Path:
    """The paper-width CrossNet (configs/crossnet.yaml) at `image_size`, freshly initialised."""
    from crossnet_dist.checkpoints.files import atomic_save
    from crossnet_dist.checkpoints.translator import serving_payload
    from crossnet_dist.config import load_config, to_container
    from crossnet_dist.methods import build_method

    cfg = load_config("crossnet", [f"model.image_size={image_size}"])
    return atomic_save(serving_payload(build_method(cfg), to_container(cfg), 0), folder / "full_width.pt")


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
    """Sequential in-process translation of the same request, one thread: decode, the backend's
    translate (resize, forward, resize), encode; p50 of the whole and of the forward alone."""
    import torch

    from crossnet_dist.config import load_config
    from crossnet_dist.images import decode_image, encode_png
    from crossnet_dist.serving.backends import build_backend
    from crossnet_dist.serving.deploy import serve_settings

    torch.set_num_threads(1)  # as one serve replica with cpus_per_replica=1
    settings = serve_settings(load_config(None, ["serve.cpus_per_replica=1", f"serve.backend={backend}"]).serve)
    model = build_backend(str(checkpoint), settings, "cpu")
    times, forwards = [], []
    for _ in range(repeats + 5):
        start = time.perf_counter()
        image = decode_image(data)
        forward = time.perf_counter()
        out = model.translate([image], "a2b", "model")[0]
        forwards.append(time.perf_counter() - forward)
        encode_png(out)
        times.append(time.perf_counter() - start)
    times, forwards = times[5:], forwards[5:]  # warm-up
    return {"p50": statistics.median(times), "p99": percentile(times, 0.99), "rps": len(times) / sum(times),
            "forward": statistics.median(forwards)}


def bare_batching(checkpoint: Path, image_size: int, batch: int, repeats: int = 5) -> float:
    """Images/s of the bare forward at `batch` over batch 1, one thread: what batching can give at most."""
    import torch

    from crossnet_dist.checkpoints.translator import load_translator

    torch.set_num_threads(1)
    method, _ = load_translator(checkpoint)
    rates = {}
    with torch.no_grad():
        for n in (1, batch):
            x = torch.rand(n, 3, image_size, image_size) * 2 - 1
            method.translate(x, "a2b")
            start = time.perf_counter()
            for _ in range(repeats):
                method.translate(x, "a2b")
            rates[n] = n * repeats / (time.perf_counter() - start)
    return rates[batch] / rates[1]


def load(url: str, data: bytes, clients: int, requests: int, timeout_s: float, directions=("a2b", "b2a")) -> dict:
    deadline = time.monotonic() + timeout_s
    latencies: list[float] = []
    timings: list[dict[str, float]] = []
    failures = 0

    def one(i: int):
        if time.monotonic() > deadline:
            return None
        request = urllib.request.Request(f"{url}/translate?direction={directions[i % len(directions)]}", data=data,
                                         headers={"Content-Type": "image/png"}, method="POST")
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
                timing = response.headers.get("Server-Timing", "")
        except OSError:
            return False
        return time.perf_counter() - start, timing

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for result in pool.map(one, range(requests)):
            if result is False:
                failures += 1
            elif result is not None:
                latencies.append(result[0])
                parts = dict(item.split(";dur=") for item in result[1].split(", ") if ";dur=" in item)
                timings.append({**{k: float(v) / 1e3 for k, v in parts.items()}, "client": result[0]})
    elapsed = time.perf_counter() - start
    if not latencies:
        raise RuntimeError(f"{url}: no request succeeded ({failures} failed)")
    return {"p50": statistics.median(latencies), "p99": percentile(latencies, 0.99), "rps": len(latencies) / elapsed,
            "n": len(latencies), "failed": failures, "timings": timings}


def healthz(url: str, repeats: int = 160) -> dict[str, float]:
    """GET /healthz (the proxy and the ingress, no model call): p50 at 1 client, req/s at 16 clients:
    the floor of any request's latency and the ceiling of any throughput on this machine."""
    def one(_):
        start = time.perf_counter()
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
            response.read()
        return time.perf_counter() - start

    times = [one(i) for i in range(repeats)]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        count = len(list(pool.map(one, range(repeats * 2))))
    return {"p50": statistics.median(times), "rps16": count / (time.perf_counter() - start)}


def serve_apps(targets: dict[str, tuple[str, list[str]]]):
    """Starts a local Ray + Serve with {name: (checkpoint, serve overrides)} at /name; returns the base URL."""
    from ray import serve
    from ray.serve import RunTarget

    from crossnet_dist.config import load_config
    from crossnet_dist.ports import free_port
    from crossnet_dist.serving.deploy import build_application
    from crossnet_dist.serving.server import connect_ray, wait_ready

    port = free_port()
    connect_ray(num_cpus=4)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    common = ["serve.cpus_per_replica=1", "serve.max_ongoing_requests=32", "serve.max_queued_requests=-1"]
    serve.run_many([RunTarget(build_application(ckpt, load_config(None, [*common, *extra]).serve), name=name,
                              route_prefix=f"/{name}") for name, (ckpt, extra) in targets.items()])
    base = f"http://127.0.0.1:{port}"
    for name in targets:
        wait_ready(f"{base}/{name}", None, 180)
    return base


def measure(checkpoint: str | None = None, requests: int = 160, level_timeout: float = 30.0, input_size: int = 64,
            max_batch_size: int = 16, batch_wait: float = 0.005) -> dict:
    """Part 1: {"checkpoint", "bare": {backend: {...}}, "rows": [(app, clients, {...})], "healthz": s}."""
    import ray

    from crossnet_dist.export import export_checkpoint

    workdir = Path(tempfile.mkdtemp(prefix="crossnet-bench-serve-"))
    checkpoint = Path(checkpoint) if checkpoint else tiny_checkpoint(workdir)
    exported = workdir / "exported"
    for direction in ("a2b", "b2a"):
        export_checkpoint(str(checkpoint), "onnx", direction, str(exported / f"{direction}.onnx"))
    data = input_png(input_size)
    bare = {"torch": bare_model(checkpoint, data, 100), "onnx": bare_model(exported, data, 100, "onnxruntime")}
    batched = [f"serve.max_batch_size={max_batch_size}", f"serve.batch_wait_timeout_s={batch_wait}"]
    try:
        base = serve_apps({"unbatched": (str(checkpoint), ["serve.max_batch_size=1"]),
                           "batched": (str(checkpoint), batched),
                           "single": (str(checkpoint), [*batched, "serve.topology=single"]),
                           "onnx": (str(exported), [*batched, "serve.backend=onnxruntime"])})
        rows = []
        for name in APPS:
            url = f"{base}/{name}"
            load(url, data, 4, 20, 10)  # warm-up
            for clients in CONCURRENCY:
                rows.append((name, clients, load(url, data, clients, requests, level_timeout)))
        floor = healthz(f"{base}/single")
    finally:
        ray.shutdown()
    return {"checkpoint": checkpoint, "bare": bare, "rows": rows, "healthz": floor, "batch_wait": batch_wait}


def measure_full_width(image_size: int = 64, requests: int = 64, level_timeout: float = 60.0, batch: int = 16,
                       batch_wait: float = 0.005) -> dict:
    """Part 2: batched / unbatched at 16 clients for a model whose forward dominates."""
    import ray

    checkpoint = full_width_checkpoint(Path(tempfile.mkdtemp(prefix="crossnet-bench-serve-")), image_size)
    data = input_png(image_size)
    bare = bare_model(checkpoint, data, 10)
    ceiling = bare_batching(checkpoint, image_size, batch)
    try:
        base = serve_apps({"unbatched": (str(checkpoint), ["serve.max_batch_size=1", "serve.topology=single"]),
                           "batched": (str(checkpoint), [f"serve.max_batch_size={batch}",
                                                         f"serve.batch_wait_timeout_s={batch_wait}", "serve.topology=single"])})
        rows = {name: load(f"{base}/{name}", data, 16, requests, level_timeout, ("a2b",)) for name in ("unbatched", "batched")}
    finally:
        ray.shutdown()
    return {"image_size": image_size, "bare": bare, "ceiling": ceiling, "rows": rows, "batch": batch}


def breakdown(timings: list[dict[str, float]]) -> dict[str, float]:
    """Medians of each Server-Timing part; proxy = the client's time outside the ingress (HTTP, the proxy,
    the client); ingress = the ingress's own work outside the model and the hop."""
    med = {part: statistics.median(t.get(part, 0.0) for t in timings) for part in (*PARTS, "client")}
    inner = sum(med[p] for p in PARTS if p != "ingress")
    return {"client": med["client"], "proxy": med["client"] - med["ingress"], "ingress": max(0.0, med["ingress"] - inner),
            **{p: med[p] for p in PARTS if p != "ingress"}}


def report(r: dict, full: dict | None) -> list[str]:
    from bench.serve_report import report_lines

    return report_lines(r, full, APPS, CONCURRENCY, breakdown)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="generator.pt (default: train a tiny CrossNet for 2 steps)")
    parser.add_argument("--requests", type=int, default=160, help="requests per concurrency level (bounded)")
    parser.add_argument("--level-timeout", type=float, default=30.0, help="seconds at most per level")
    parser.add_argument("--input-size", type=int, default=64, help="side of the square PNG sent")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-wait", type=float, default=0.005,
                        help="serve.batch_wait_timeout_s of the batched apps (a lone request never waits)")
    parser.add_argument("--skip-full-width", action="store_true", help="no part 2 (the full-width 64-px model)")
    args = parser.parse_args()
    r = measure(args.checkpoint, args.requests, args.level_timeout, args.input_size, args.max_batch_size, args.batch_wait)
    full = None if args.skip_full_width else measure_full_width(batch_wait=args.batch_wait)
    print(f"model: {r['checkpoint']}{' (tiny CrossNet, 32x32, 2 training steps)' if not args.checkpoint else ''}; "
          f"input {args.input_size}x{args.input_size} PNG; {os.cpu_count()} CPUs")
    print("\n".join(report(r, full)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
