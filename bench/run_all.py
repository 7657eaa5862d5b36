"""`make bench`: one combined table; every row is a ratio against a baseline measured in this run.

    python bench/run_all.py [--steps 64] [--log-every 4] [--trainer-runs 2]
                            [--skip-memory] [--skip-dist] [--skip-compile] [--skip-loader] [--skip-serve]

Rows:
  trainer overhead   Ray Train + DeepSpeed ZeRO-0, 1 worker: wall time per step between its first and
                     last report (reports every --log-every steps and their collectives included;
                     start-up, warm-up window and final checkpoint excluded; mean of --trainer-runs
                     runs, each printed) / the mean step of a bare
                     PyTorch loop of the same networks, losses, pools, Adam, batch and thread count,
                     timed in this process before the first trainer run and after each. Target <= 1.05.
                     Split: the same bare loop inside a 1-CPU Ray worker process (Ray runs workers
                     at nice 15), so what Ray's process costs and what the trainer adds are apart.
  compute efficiency FLOPs of one step (FlopCounterMode, G+D fwd+bwd) / bare step time, divided by the
                     torch.mm fp32 peak measured here at the same thread count.
  step optimisations bare-loop A/B, interleaved rounds: deferred metric sync (applied in the trainers:
                     the baseline), channels_last; train.compile (compile seconds and break-even
                     steps; Inductor's on-disk cache makes a second run's compile shorter).
  2 vs 1 worker      bench/train_scaling.py's runs (step time, throughput) + bench/scaling_calibration.py:
                     the scaling model's 2-worker step from the 1-worker parts and runs without Ray,
                     against the measured step, part by part (compute, wait, all-reduce, the loop).
  ZeRO 0/2/3 memory  per-rank bytes (train_scaling), unless --skip-memory.
  data loader        bench/data_loader.py: streaming loader images/s from a local S3 server (and from
                     disk) / the images/s one training process consumes.
  serve              bench/serve.py: endpoint latency and throughput / the bare model in process;
                     @serve.batch vs unbatched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
for key, value in {"DS_ACCELERATOR": "cpu", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                   "GLOO_SOCKET_IFNAME": "lo", "RAY_DEDUP_LOGS": "1"}.items():
    os.environ.setdefault(key, value)

import torch  # noqa: E402

from bench import scaling_calibration, step_bench  # noqa: E402


def load() -> str:
    la = os.getloadavg()
    return f"load avg {la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f} on {os.cpu_count()} CPUs"


def bare_loop_in_ray_worker(steps: int) -> list[float]:
    """The bare loop run inside a 1-CPU Ray worker process (what a Ray Train worker runs in: nice 15,
    Ray's core-worker threads), to split the trainer overhead into Ray's process and our code."""
    import ray

    @ray.remote(num_cpus=1)
    def bare(repo: str, steps: int) -> list[float]:
        import sys

        sys.path.insert(0, repo)
        import torch

        from bench import step_bench

        torch.set_num_threads(1)
        return step_bench.bare_loop(step_bench.bench_config(), steps)

    return ray.get(bare.remote(str(REPO), steps))


def worker_threads() -> int:
    import ray

    @ray.remote(num_cpus=1)
    def threads() -> int:
        import torch

        return torch.get_num_threads()

    return ray.get(threads.remote())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=64, help="steps per distributed run")
    parser.add_argument("--log-every", type=int, default=4, help="train.log_every of the distributed runs")
    parser.add_argument("--bare-steps", type=int, default=30)
    parser.add_argument("--trainer-runs", type=int, default=2, help="1-worker trainer runs for row (a), averaged")
    parser.add_argument("--skip-memory", action="store_true", help="skip the 2-worker ZeRO-2/3 runs")
    parser.add_argument("--skip-dist", action="store_true", help="no Ray runs (in-process rows only)")
    parser.add_argument("--skip-compile", action="store_true", help="no torch.compile A/B (~1 min to compile)")
    parser.add_argument("--skip-loader", action="store_true", help="no bench/data_loader.py rows (~1 min)")
    parser.add_argument("--skip-serve", action="store_true", help="no bench/serve.py rows (~1-2 min)")
    args = parser.parse_args()
    if args.trainer_runs < 1:
        parser.error("--trainer-runs must be at least 1")
    t_start = time.perf_counter()
    loads = [load()]
    ns = argparse.Namespace(steps=args.steps, log_every=args.log_every, image_size=32, gen_channels=16, batch_size=4,
                            gpu=False)
    cfg = step_bench.bench_config()

    rows: list[tuple[str, str, str, str]] = []  # (row, value, baseline, ratio)
    dist: dict = {}
    threads = 1
    if not args.skip_dist:
        import ray

        from bench.train_scaling import run as dist_run
        from crossnet_dist.distributed.driver import connect_ray

        started = connect_ray(None, num_cpus=os.cpu_count())
        storage = tempfile.mkdtemp(prefix="crossnet-bench-")
        try:
            threads = worker_threads()
            torch.set_num_threads(threads)
            bare = step_bench.bare_loop(cfg, args.bare_steps)
            in_worker = bare_loop_in_ray_worker(args.bare_steps)
            # trainer runs interleaved with bare loops: one run's step time moves by several % here
            w1_runs = []
            for i in range(args.trainer_runs):
                w1_runs.append(dist_run(f"w1-zero0-{i}", storage, ns, 1, 0))
                in_worker += bare_loop_in_ray_worker(args.bare_steps)
                bare += step_bench.bare_loop(cfg, args.bare_steps)
            dist["w1"] = {**w1_runs[0], "step_s": statistics.fmean(r["step_s"] for r in w1_runs)}
            dist["w1_runs"] = [r["step_s"] for r in w1_runs]
            dist["w2-0"] = dist_run("w2-zero0", storage, ns, 2, 0)
            dist["calibration"] = scaling_calibration.calibrate(storage, ns, cfg, other_steps=(dist["w2-0"]["step_s"],))
            if not args.skip_memory:
                for s in (2, 3):
                    dist[f"w2-{s}"] = dist_run(f"w2-zero{s}", storage, ns, 2, s)
        finally:
            if started:
                ray.shutdown()
    else:
        torch.set_num_threads(threads)
        bare = step_bench.bare_loop(cfg, args.bare_steps) + step_bench.bare_loop(cfg, args.bare_steps)
    loads.append(load())
    bare_s = statistics.fmean(bare)  # the mean, like the trainer's (wall time / steps)

    if dist:
        w1 = dist["w1"]["step_s"]
        spread = ", ".join(f"{r / bare_s:.3f}" for r in dist["w1_runs"])
        rows.append(
            (
                "(a) trainer overhead: 1 worker ZeRO-0 / bare loop",
                f"{w1 * 1e3:.1f} ms",
                f"{bare_s * 1e3:.1f} ms",
                f"{w1 / bare_s:.3f}  (target <= 1.05: {'MET' if w1 / bare_s <= 1.05 else 'NOT met'}; runs {spread})",
            )
        )
        worker_s = statistics.fmean(in_worker)
        rows.append(("(a') split: trainer / the same bare loop inside a Ray worker process", f"{w1 * 1e3:.1f} ms",
                     f"{worker_s * 1e3:.1f} ms", f"{w1 / worker_s:.3f}  (our code + DeepSpeed + Ray Train)"))
        rows.append(("(a') split: bare loop in a Ray worker / in this process", f"{worker_s * 1e3:.1f} ms",
                     f"{bare_s * 1e3:.1f} ms", f"{worker_s / bare_s:.3f}  (Ray's worker process: nice 15, its threads)"))

    flops = step_bench.step_flops(cfg)["total"]
    peak = step_bench.matmul_peak()
    achieved = flops / bare_s
    rows.append((f"(b) compute efficiency: step FLOP/s / mm peak ({threads} thread)", f"{achieved / 1e9:.1f} GFLOP/s",
                 f"{peak / 1e9:.1f} GFLOP/s", f"{achieved / peak:.3f}"))
    if dist:
        rows.append(("(b') same, distributed 1-worker step", f"{flops / dist['w1']['step_s'] / 1e9:.1f} GFLOP/s",
                     f"{peak / 1e9:.1f} GFLOP/s", f"{flops / dist['w1']['step_s'] / peak:.3f}"))

    ab = step_bench.ab(cfg, args.bare_steps, {"baseline": {}, "sync_every_step": {"sync_metrics_every_step": True},
                                              "channels_last": {"channels_last": True}})
    rows.append(("(opt) metric sync once per window (applied) / float() every step", f"{ab['baseline'] * 1e3:.1f} ms",
                 f"{ab['sync_every_step'] * 1e3:.1f} ms", f"{ab['baseline'] / ab['sync_every_step']:.3f}"))
    rows.append(("(opt) channels_last memory format (not applied) / applied loop", f"{ab['channels_last'] * 1e3:.1f} ms",
                 f"{ab['baseline'] * 1e3:.1f} ms", f"{ab['channels_last'] / ab['baseline']:.3f}"))
    if not args.skip_compile:
        started = time.perf_counter()
        compiled = step_bench.bare_loop(cfg, args.bare_steps, compiled=True)
        overhead = time.perf_counter() - started - sum(compiled) - 3 * statistics.fmean(compiled)  # beyond 3 warm-up steps
        eager = statistics.fmean(bare)
        gain = eager - statistics.fmean(compiled)
        pays = f"pays after {overhead / gain:.0f} steps" if gain > 0 else "never pays"
        rows.append(("(opt) train.compile (torch.compile per network) / eager", f"{statistics.fmean(compiled) * 1e3:.1f} ms",
                     f"{eager * 1e3:.1f} ms", f"{statistics.fmean(compiled) / eager:.3f}  (compile {overhead:.0f} s: {pays})"))

    if dist:
        one, two = dist["w1"], dist["w2-0"]
        rows.append(("(c) 2 workers ZeRO-0 step time / 1 worker", f"{two['step_s'] * 1e3:.1f} ms",
                     f"{one['step_s'] * 1e3:.1f} ms", f"{two['step_s'] / one['step_s']:.3f}"))
        tput = lambda r: r["images_per_step"] / r["step_s"]  # noqa: E731
        rows.append(("(c) 2 workers ZeRO-0 throughput / 1 worker", f"{tput(two):.1f} img/s", f"{tput(one):.1f} img/s",
                     f"{tput(two) / tput(one):.3f}"))
        rows += scaling_calibration.rows(dist["calibration"])
        for s in (2, 3):
            if f"w2-{s}" in dist:
                r, base = dist[f"w2-{s}"], two
                for kind in ("param", "grad", "optim_state"):
                    rows.append((f"(c) ZeRO-{s} per-rank {kind} bytes / ZeRO-0", f"{r[kind] / 2**20:.2f} MiB",
                                 f"{base[kind] / 2**20:.2f} MiB", f"{r[kind] / base[kind]:.3f}" if base[kind] else "-"))
    loads.append(load())
    if not args.skip_loader:
        rows += loader_rows()
        loads.append(load())
    if not args.skip_serve:
        rows += serve_rows()
        loads.append(load())

    print(f"\nCrossNet tiny (32px, ngf=16, batch 4/worker), CPU fp32, {threads} torch thread(s) per worker/bare loop; "
          f"{' -> '.join(loads)}; {time.perf_counter() - t_start:.0f} s")
    w = max(len(r[0]) for r in rows)
    print(f"{'row':<{w}} | {'value':>16} | {'baseline':>16} | ratio")
    print("-" * (w + 50))
    for r in rows:
        print(f"{r[0]:<{w}} | {r[1]:>16} | {r[2]:>16} | {r[3]}")
    sys.stdout.flush()
    return 0


def loader_rows() -> list[tuple[str, str, str, str]]:
    """Streaming loader (2 DataLoader workers, 64px emoji, batch 4) vs training consumption."""
    from bench import data_loader

    r = data_loader.measure(limit=200, workers=(2,), seconds=4.0)
    _, disk, s3, _, _ = r["rows"][0]
    train = r["train"]
    return [
        ("(d) S3 streaming loader (2 workers) / images a training step consumes", f"{s3:.0f} img/s",
         f"{train:.0f} img/s", f"{s3 / train:.2f}  (> 1: training never waits on S3)"),
        ("(d) S3 streaming loader / the same loader from local disk", f"{s3:.0f} img/s", f"{disk:.0f} img/s",
         f"{s3 / disk:.2f}"),
    ]


def serve_rows() -> list[tuple[str, str, str, str]]:
    """Ray Serve endpoint (tiny CrossNet, 64px PNG in) vs the bare model in this process."""
    from bench import serve as serve_bench

    r = serve_bench.measure(requests=60, level_timeout=10.0)
    bare = r["bare"]["torch"]
    res = {(name, clients): result for name, clients, result in r["rows"]}
    one, b16, u16, o16 = res[("batched", 1)], res[("batched", 16)], res[("unbatched", 16)], res[("onnx", 16)]
    return [
        ("(e) serve p50 latency, 1 client / bare model", f"{one['p50'] * 1e3:.1f} ms", f"{bare['p50'] * 1e3:.1f} ms",
         f"{one['p50'] / bare['p50']:.2f}"),
        ("(e) serve throughput, 16 clients batched / bare model (1 thread)", f"{b16['rps']:.1f} req/s",
         f"{bare['rps']:.1f} img/s", f"{b16['rps'] / bare['rps']:.2f}"),
        ("(e) serve throughput, 16 clients: batched / unbatched", f"{b16['rps']:.1f} req/s", f"{u16['rps']:.1f} req/s",
         f"{b16['rps'] / u16['rps']:.2f}"),
        ("(e) serve throughput, 16 clients: backend onnxruntime / torch (both batched)", f"{o16['rps']:.1f} req/s",
         f"{b16['rps']:.1f} req/s", f"{o16['rps'] / b16['rps']:.2f}"),
    ]


if __name__ == "__main__":
    sys.exit(main())
