"""Distributed training benchmark: step time for 1 vs 2 Ray Train workers, and per-rank memory of
DeepSpeed ZeRO 0/2/3 (parameters, gradients, optimiser state), each printed as a ratio against a
baseline measured in the same run.

    python bench/train_scaling.py [--steps 24] [--log-every 4] [--gen-channels 16] [--image-size 32] [--batch-size 4]

Runs on a local Ray bound to 127.0.0.1 (or RAY_ADDRESS), CPU (fp32, gloo) unless --gpu. Data: fixed
in-memory batches (tests/dist_fixtures.py), so the numbers are about training, not data loading.
Step time = wall time between rank 0's first report and its last (perf/elapsed_s) / the steps between:
everything a training step costs in the trainer, the reports every train.log_every steps included
(the first window, with warm-up, and the final checkpoint excluded); memory = bytes held by rank 0
after its first step (see crossnet_dist/distributed/engines.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

for key, value in {"DS_ACCELERATOR": "cpu", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                   "GLOO_SOCKET_IFNAME": "lo", "RAY_DEDUP_LOGS": "1"}.items():
    os.environ.setdefault(key, value)


PROFILE_KEYS = ("perf/part_backward_s", "perf/part_wait_s", "perf/part_allreduce_s", "perf/part_optimizer_s",
                "perf/part_batch_sync_s",
                "perf/train_step_s", "perf/workers_cpu_s", "perf/machine_cpu_s", "perf/data_wait_s", "perf/step_time_s")


def run(label: str, storage: str, args, workers: int, stage: int, profile: bool = False) -> dict:
    from crossnet_dist.config import load_config
    from crossnet_dist.distributed.driver import train_distributed

    cfg = load_config(REPO / "jobs" / "configs" / "tiny.yaml", [
        f"model.image_size={args.image_size}", f"data.load_size={args.image_size}",
        f"model.gen_channels={args.gen_channels}", f"model.disc_channels={args.gen_channels}",
        f"data.batch_size={args.batch_size}", f"train.max_steps={args.steps}", f"train.log_every={args.log_every}",
        "train.progress=false", f"dist.num_workers={workers}", f"dist.zero_stage={stage}",
        f"dist.use_gpu={args.gpu}", f"dist.storage_path={storage}", f"dist.run_name={label}",
        f"dist.checkpoint_every={args.steps}", "dist.zero3_persistence_threshold=0",
        "dist.loader=tests.dist_fixtures:memory_loader", "dist.max_failures=0", f"dist.profile_steps={profile}",
    ])
    result = train_distributed(cfg, progress=False)
    first, last = result.history[0], result.history[-1]
    if last["step"] <= first["step"]:
        raise ValueError(f"--steps {args.steps} must cover at least two reports (--log-every {args.log_every})")
    step_s = (last["perf/elapsed_s"] - first["perf/elapsed_s"]) / (last["step"] - first["step"])
    mem = result.summary["memory"]
    out = {"step_s": step_s, "images_per_step": workers * args.batch_size,
           "window_median_s": statistics.median(h["perf/step_time_s"] for h in result.history[1:])}
    for kind in ("param", "grad", "optim_state", "master"):
        out[kind] = mem[f"mem/G_{kind}_bytes"] + mem[f"mem/D_{kind}_bytes"]
    if profile:  # per step, mean over the report windows after the first (warm-up)
        out["parts"] = {k.removeprefix("perf/"): statistics.fmean(h[k] for h in result.history[1:]) for k in PROFILE_KEYS}
    print(f"  {label}: {out['step_s'] * 1000:.1f} ms per step over steps {first['step']}-{last['step']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--log-every", type=int, default=4)
    parser.add_argument("--gen-channels", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4, help="per worker")
    parser.add_argument("--gpu", action="store_true")
    args = parser.parse_args()

    import ray

    from crossnet_dist.distributed.driver import connect_ray

    started = connect_ray(None)
    storage = tempfile.mkdtemp(prefix="crossnet-bench-")
    try:
        print(f"CrossNet, {args.image_size}px, ngf={args.gen_channels}, batch {args.batch_size}/worker, "
              f"{args.steps} steps, {'GPU bf16' if args.gpu else 'CPU fp32'}; cluster {ray.cluster_resources()}")
        one = run("w1-zero0", storage, args, 1, 0)
        two = {stage: run(f"w2-zero{stage}", storage, args, 2, stage) for stage in (0, 2, 3)}
    finally:
        if started:
            ray.shutdown()

    print("\nStep time (baseline: 1 worker, ZeRO-0)")
    print(f"  {'setup':<18}{'step ms':>9}{'ratio':>8}{'images/s':>10}{'throughput ratio':>18}")
    base_tput = one["images_per_step"] / one["step_s"]
    for label, r in [("1 worker ZeRO-0", one)] + [(f"2 workers ZeRO-{s}", two[s]) for s in (0, 2, 3)]:
        tput = r["images_per_step"] / r["step_s"]
        print(f"  {label:<18}{r['step_s'] * 1000:>9.0f}{r['step_s'] / one['step_s']:>8.2f}{tput:>10.1f}"
              f"{tput / base_tput:>18.2f}")

    print("\nPer-rank memory, G+D, MiB (baseline: 2 workers ZeRO-0; ratio in brackets)")
    base = two[0]
    print(f"  {'':<10}{'parameters':>18}{'gradients':>18}{'optim state':>18}{'fp32 master':>18}")
    for stage in (0, 2, 3):
        r = two[stage]
        cells = []
        for kind in ("param", "grad", "optim_state", "master"):
            ratio = f"({r[kind] / base[kind]:.2f})" if base[kind] else "(-)"
            cells.append(f"{r[kind] / 2**20:>10.2f} {ratio:>7}")
        print(f"  {'ZeRO-' + str(stage):<10}" + "".join(cells))


if __name__ == "__main__":
    main()
