"""`make bench`: one combined table; every row is a ratio against a baseline measured in this run.

    python bench/run_all.py [--steps 12] [--skip-memory] [--with-loader] [--with-serve]

Rows:
  trainer overhead   Ray Train + DeepSpeed ZeRO-0, 1 worker, median per-step time the worker reports
                     (perf/step_time_s, start-up/teardown excluded) / a bare PyTorch loop of the same
                     networks, losses, pools, Adam, batch and thread count, timed in this process
                     before and after the Ray runs. Target <= 1.05.
  compute efficiency FLOPs of one step (FlopCounterMode, G+D fwd+bwd) / bare step time, divided by the
                     torch.mm fp32 peak measured here at the same thread count.
  step optimisations bare-loop A/B, interleaved rounds: deferred metric sync, channels_last.
  2 vs 1 worker      bench/train_scaling.py's runs (step time, throughput) + bench/scaling_model.py's
                     prediction from the 1-worker step and a measured gloo loopback all-reduce.
  ZeRO 0/2/3 memory  per-rank bytes (train_scaling), unless --skip-memory.
  loader / serve     bench/data_loader.py and bench/serve.py output, only with --with-loader/--with-serve.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
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

from bench import scaling_model, step_bench  # noqa: E402


def load() -> str:
    la = os.getloadavg()
    return f"load avg {la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f} on {os.cpu_count()} CPUs"


def worker_threads() -> int:
    import ray

    @ray.remote(num_cpus=1)
    def threads() -> int:
        import torch

        return torch.get_num_threads()

    return ray.get(threads.remote())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="steps per distributed run")
    parser.add_argument("--bare-steps", type=int, default=15)
    parser.add_argument("--skip-memory", action="store_true", help="skip the 2-worker ZeRO-2/3 runs")
    parser.add_argument("--skip-dist", action="store_true", help="no Ray runs (in-process rows only)")
    parser.add_argument("--with-loader", action="store_true", help="also run bench/data_loader.py (~1 min)")
    parser.add_argument("--with-serve", action="store_true", help="also run bench/serve.py (~1-2 min)")
    args = parser.parse_args()
    t_start = time.perf_counter()
    loads = [load()]
    ns = argparse.Namespace(steps=args.steps, image_size=32, gen_channels=16, batch_size=4, gpu=False)
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
            dist["w1"] = dist_run("w1-zero0", storage, ns, 1, 0)
            bare += step_bench.bare_loop(cfg, args.bare_steps)
            dist["w2-0"] = dist_run("w2-zero0", storage, ns, 2, 0)
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
    bare_s = statistics.median(bare)

    if dist:
        w1 = dist["w1"]["step_s"]
        rows.append(("(a) trainer overhead: 1 worker ZeRO-0 / bare loop", f"{w1 * 1e3:.1f} ms",
                     f"{bare_s * 1e3:.1f} ms", f"{w1 / bare_s:.3f}  (target <= 1.05: {'MET' if w1 / bare_s <= 1.05 else 'NOT met'})"))

    flops = step_bench.step_flops(cfg)["total"]
    peak = step_bench.matmul_peak()
    achieved = flops / bare_s
    rows.append((f"(b) compute efficiency: step FLOP/s / mm peak ({threads} thread)", f"{achieved / 1e9:.1f} GFLOP/s",
                 f"{peak / 1e9:.1f} GFLOP/s", f"{achieved / peak:.3f}"))
    if dist:
        rows.append(("(b') same, distributed 1-worker step", f"{flops / dist['w1']['step_s'] / 1e9:.1f} GFLOP/s",
                     f"{peak / 1e9:.1f} GFLOP/s", f"{flops / dist['w1']['step_s'] / peak:.3f}"))

    ab = step_bench.ab(cfg, args.bare_steps, {"baseline": {}, "deferred": {"sync_metrics_every_step": False},
                                              "channels_last": {"channels_last": True}})
    for name in ("deferred", "channels_last"):
        label = {"deferred": "metrics: float() per step -> once per window",
                 "channels_last": "channels_last memory format"}[name]
        rows.append((f"(opt) {label}", f"{ab[name] * 1e3:.1f} ms", f"{ab['baseline'] * 1e3:.1f} ms",
                     f"{ab[name] / ab['baseline']:.3f}"))

    if dist:
        one, two = dist["w1"], dist["w2-0"]
        rows.append(("(c) 2 workers ZeRO-0 step time / 1 worker", f"{two['step_s'] * 1e3:.1f} ms",
                     f"{one['step_s'] * 1e3:.1f} ms", f"{two['step_s'] / one['step_s']:.3f}"))
        tput = lambda r: r["images_per_step"] / r["step_s"]  # noqa: E731
        rows.append(("(c) 2 workers ZeRO-0 throughput / 1 worker", f"{tput(two):.1f} img/s", f"{tput(one):.1f} img/s",
                     f"{tput(two) / tput(one):.3f}"))
        stats = scaling_model.stats_for(cfg)
        bw, alpha = scaling_model.measure_gloo(stats["N_G"] + stats["N_D"])
        pred, _ = scaling_model.predict(stats, 0, 2, one["step_s"], bw, alpha, 4)
        rows.append((f"(c) model: predicted 2-worker step / measured (gloo lo {bw / 1e9:.2f} GB/s, "
                     f"{alpha * 1e6:.0f} us)", f"{pred * 1e3:.1f} ms", f"{two['step_s'] * 1e3:.1f} ms",
                     f"{pred / two['step_s']:.3f}"))
        for s in (2, 3):
            if f"w2-{s}" in dist:
                r, base = dist[f"w2-{s}"], two
                for kind in ("param", "grad", "optim_state"):
                    rows.append((f"(c) ZeRO-{s} per-rank {kind} bytes / ZeRO-0", f"{r[kind] / 2**20:.2f} MiB",
                                 f"{base[kind] / 2**20:.2f} MiB", f"{r[kind] / base[kind]:.3f}" if base[kind] else "-"))
    loads.append(load())

    print(f"\nCrossNet tiny (32px, ngf=16, batch 4/worker), CPU fp32, {threads} torch thread(s) per worker/bare loop; "
          f"{' -> '.join(loads)}; {time.perf_counter() - t_start:.0f} s")
    w = max(len(r[0]) for r in rows)
    print(f"{'row':<{w}} | {'value':>16} | {'baseline':>16} | ratio")
    print("-" * (w + 50))
    for r in rows:
        print(f"{r[0]:<{w}} | {r[1]:>16} | {r[2]:>16} | {r[3]}")
    sys.stdout.flush()

    for flag, script in ((args.with_loader, "data_loader.py"), (args.with_serve, "serve.py")):
        if flag:
            print(f"\n== bench/{script} ==", flush=True)
            subprocess.run([sys.executable, str(REPO / "bench" / script)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
