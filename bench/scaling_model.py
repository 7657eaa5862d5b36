"""Analytic scaling model for data-parallel CrossNet training with DeepSpeed ZeRO 0-3.

    python bench/scaling_model.py [--bw-gbps 100] [--latency-us 10] [--tflops 400] [--mfu 0.4]
                                  [--batch-per-gpu 1] [--overlap 0]

Inputs come from the real modules: parameter counts of the generator group (E_ab, E_ba, D_a, D_b,
T_ab, T_ba) and discriminator group (Q_a, Q_b), FLOPs of one training step (torch FlopCounterMode
on the meta device, G+D forward+backward), and the number of parameter-holding module calls per
step (ZeRO-3 gathers each one's parameters at every call, forward and backward).

Per-step communication of one rank, ring collectives over p ranks, per group of N elements of
b bytes (alpha = latency, B = bandwidth per rank):
  all-reduce      2(p-1)/p N b / B + 2(p-1) alpha
  reduce-scatter   (p-1)/p N b / B +  (p-1) alpha      (all-gather: the same)
  ZeRO-0    all-reduce of G and D gradients
  ZeRO-1/2  reduce-scatter of gradients + all-gather of updated parameters (= all-reduce volume)
  ZeRO-3    reduce-scatter of gradients + an all-gather of each module's parameters at every
            forward and backward call (CrossNet calls E/D/T several times a step, and the frozen
            discriminators run inside the generator step): >= 3x the ZeRO-0 volume.
Step time = compute + (1 - overlap) * comm; efficiency = compute / step time (weak scaling: fixed
batch per GPU). With --check-measured the same model, fed gloo loopback alpha/B measured here,
predicts the 2-worker CPU step from the 1-worker one (see bench/run_all.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch  # noqa: E402

GPUS = (8, 16, 32, 64, 128, 256)


def model_stats(cfg, batch: int = 1) -> dict:
    """Parameter counts, step FLOPs per sample and parameter-module calls per step, on 'meta'."""
    from torch.utils.flop_counter import FlopCounterMode

    from crossnet_dist.methods import build_method

    with torch.device("meta"):
        method = build_method(cfg)
    s = cfg.model.image_size
    x_a, x_b = torch.zeros(batch, 3, s, s, device="meta"), torch.zeros(batch, 3, s, s, device="meta")
    calls = {"G": 0, "D": 0}
    hooks = []
    for group, mods in (("G", method.generators), ("D", method.discriminators)):
        for m in mods.modules():
            if any(True for _ in m.parameters(recurse=False)):
                hooks.append(m.register_forward_hook(lambda *a, g=group: calls.__setitem__(g, calls[g] + 1)))
    with FlopCounterMode(display=False) as fc:
        for p in method.discriminators.parameters():
            p.requires_grad_(False)
        g_out = method.generator_step(x_a, x_b)
        g_out.loss.backward()
        for p in method.discriminators.parameters():
            p.requires_grad_(True)
        d_out = method.discriminator_step(x_a, x_b, {k: v.detach() for k, v in g_out.fakes.items()})
        d_out.loss.backward()
    for h in hooks:
        h.remove()
    return {
        "N_G": sum(p.numel() for p in method.generators.parameters()),
        "N_D": sum(p.numel() for p in method.discriminators.parameters()),
        "flops_per_sample": fc.get_total_flops() / batch,
        "calls_G": calls["G"], "calls_D": calls["D"],
    }


def comm_time(stats: dict, stage: int, p: int, bw: float, alpha: float, bytes_per: int) -> float:
    """Seconds of communication per step for one rank (ring model)."""
    if p <= 1:
        return 0.0
    f = (p - 1) / p
    n_g, n_d = stats["N_G"], stats["N_D"]
    if stage in (0, 1, 2):
        # two engines, one gradient bucket each (DeepSpeed default buckets exceed these models)
        vol = 2 * f * (n_g + n_d) * bytes_per
        lat = 2 * 2 * (p - 1) * alpha
    else:
        # reduce-scatter grads once per group, all-gather every parameter module at each forward
        # call and again in backward (the D group is also gathered inside the generator step)
        vol = f * (n_g + n_d) * bytes_per  # reduce-scatter
        vol += f * bytes_per * (2 * n_g * stats["calls_G"] / max(1, stats["modules_G"])
                                + 2 * n_d * stats["calls_D"] / max(1, stats["modules_D"]))
        lat = (p - 1) * alpha * (2 + 2 * (stats["calls_G"] + stats["calls_D"]))
    return vol / bw + lat


def predict(stats: dict, stage: int, p: int, step_compute_s: float, bw: float, alpha: float, bytes_per: int,
            overlap: float = 0.0) -> tuple[float, float]:
    """(step time s, scaling efficiency) at p ranks."""
    c = comm_time(stats, stage, p, bw, alpha, bytes_per)
    t = step_compute_s + (1 - overlap) * c
    return t, step_compute_s / t


def add_module_counts(cfg, stats: dict) -> dict:
    from crossnet_dist.methods import build_method

    with torch.device("meta"):
        method = build_method(cfg)
    for group, mods in (("G", method.generators), ("D", method.discriminators)):
        stats[f"modules_{group}"] = sum(1 for m in mods.modules() if any(True for _ in m.parameters(recurse=False)))
    return stats


def stats_for(cfg) -> dict:
    return add_module_counts(cfg, model_stats(cfg))


def table(name: str, cfg, args) -> list[str]:
    stats = stats_for(cfg)
    compute = stats["flops_per_sample"] * args.batch_per_gpu / (args.tflops * 1e12 * args.mfu)
    lines = [f"{name}: G {stats['N_G'] / 1e6:.2f} M params, D {stats['N_D'] / 1e6:.2f} M, "
             f"{stats['flops_per_sample'] / 1e9:.1f} GFLOP/sample/step, param-module calls G {stats['calls_G']} "
             f"(of {stats['modules_G']}) D {stats['calls_D']} (of {stats['modules_D']}); compute "
             f"{compute * 1e3:.1f} ms/step at {args.batch_per_gpu}/GPU, {args.tflops} TFLOP/s x MFU {args.mfu}",
             f"  {'GPUs':>6}" + "".join(f"{'ZeRO-' + str(s) + ' eff':>13}" for s in (0, 2, 3))]
    for p in GPUS:
        cells = [predict(stats, s, p, compute, args.bw_gbps * 1e9, args.latency_us * 1e-6, 2, args.overlap)[1]
                 for s in (0, 2, 3)]
        lines.append(f"  {p:>6}" + "".join(f"{c:>13.3f}" for c in cells))
    return lines


def measure_gloo(n_elems: int, repeats: int = 5) -> tuple[float, float]:
    """(bandwidth B/s, latency s) of a 2-process gloo all-reduce on 127.0.0.1, fitted from a
    1-element and an n_elems fp32 all-reduce (ring: t = 2 alpha + bytes / B for p = 2)."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=_gloo_worker, args=(r, port, n_elems, repeats, q)) for r in range(2)]
    for pr in procs:
        pr.start()
    res = q.get(timeout=120)
    for pr in procs:
        pr.join(timeout=30)
    t_small, t_big = res
    alpha = t_small / 2
    bw = (n_elems * 4) / max(t_big - 2 * alpha, 1e-9)
    return bw, alpha


def _gloo_worker(rank: int, port: int, n: int, repeats: int, q) -> None:
    import time

    import torch.distributed as dist

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "GLOO_SOCKET_IFNAME": "lo"})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    out = []
    for size in (1, n):
        t = torch.ones(size)
        dist.all_reduce(t)
        best = float("inf")
        for _ in range(repeats):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(t)
            best = min(best, time.perf_counter() - t0)
        out.append(best)
    if rank == 0:
        q.put(out)
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bw-gbps", type=float, default=100.0, help="per-GPU bus bandwidth, GB/s (IB NDR ~50, NVLink ~450)")
    parser.add_argument("--latency-us", type=float, default=10.0)
    parser.add_argument("--tflops", type=float, default=400.0, help="bf16 dense peak per GPU (H100 SXM ~990)")
    parser.add_argument("--mfu", type=float, default=0.4)
    parser.add_argument("--batch-per-gpu", type=int, default=1)
    parser.add_argument("--overlap", type=float, default=0.0, help="fraction of comm hidden behind compute")
    args = parser.parse_args()
    from crossnet_dist.config import load_config

    from bench.step_bench import bench_config

    print(f"interconnect {args.bw_gbps} GB/s, latency {args.latency_us} us, overlap {args.overlap}, bf16 (2 B/elem)")
    for line in table("paper defaults", load_config(None, []), args):
        print(line)
    for line in table("tiny (bench)", bench_config(), args):
        print(line)


if __name__ == "__main__":
    main()
