"""Analytic scaling model for data-parallel CrossNet training with DeepSpeed ZeRO 0-3 on a GPU cluster.

    python bench/scaling_model.py [--tflops 989] [--mfu 0.35] [--cluster-batch 4] [--imbalance 0.02]
                                  [--call-overhead-us 300]

Inputs come from the real modules: parameter counts of the generator group (E_ab, E_ba, D_a, D_b,
T_ab, T_ba) and discriminator group (Q_a, Q_b), FLOPs of one training step (torch FlopCounterMode
on the meta device, G+D forward+backward), and the number of parameter-holding module calls per
step (ZeRO-3 gathers each one's parameters at every call, forward and backward).

Step time of one rank = compute (1 + imbalance) + collectives, with no overlap:
  compute      FLOPs per step / (bf16 peak x MFU)
  imbalance    waiting on the slower rank, as a fraction of compute
  collectives  per engine (G, D), NCCL's two-level all-reduce of N elements of b = 4 bytes (autocast
               keeps fp32 gradients): within a node of g GPUs a ring, 2(g-1)/g N b / B_nvlink + 2(g-1)
               alpha_nvlink; between n nodes a ring of each GPU's 1/g shard on its own NIC,
               2(n-1)/n (N b / g) / B_nic + 2(n-1) alpha_nic; plus a host cost per collective call.
    ZeRO-0    one all-reduce per engine
    ZeRO-1/2  reduce-scatter of gradients + all-gather of updated parameters: the same bytes, two calls
    ZeRO-3    reduce-scatter of gradients + an all-gather of each module's parameters at every forward
              and backward call (CrossNet calls E/D/T several times a step, and the frozen
              discriminators run inside the generator step)
Efficiency = compute / step time (weak scaling: fixed batch per GPU). The same decomposition (compute,
waiting, all-reduce, the loop around the step) is checked against a measured 2-worker CPU step, part
by part, in bench/scaling_calibration.py (`make bench` row (c)).
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

GPUS = (8, 64, 256)


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


# 8x H200 per node on NVLink (NCCL all-reduce bus bandwidth ~360 GB/s of the 450 GB/s per direction),
# one 400 Gb/s NIC per GPU between nodes (~45 GB/s achieved); latencies of one ring step
H200_CLUSTER = {"gpus_per_node": 8, "bw_intra": 360e9, "alpha_intra": 5e-6, "bw_inter": 45e9, "alpha_inter": 15e-6}


def hierarchical_allreduce_s(n_bytes: float, p: int, net: dict) -> float:
    """NCCL's two-level all-reduce: a ring within the node (reduce-scatter + all-gather over NVLink),
    and between nodes a ring all-reduce of each GPU's 1/g shard on its own NIC."""
    g = min(p, net["gpus_per_node"])
    t = 2 * (g - 1) / g * n_bytes / net["bw_intra"] + 2 * (g - 1) * net["alpha_intra"] if g > 1 else 0.0
    nodes = p // g
    if nodes > 1:
        t += 2 * (nodes - 1) / nodes * (n_bytes / g) / net["bw_inter"] + 2 * (nodes - 1) * net["alpha_inter"]
    return t


def cluster_comm_s(stats: dict, stage: int, p: int, net: dict, bytes_per: int, call_overhead_s: float) -> float:
    """Per-step collectives of one rank on a GPU cluster. ZeRO-0/1/2: one all-reduce volume per engine
    (ZeRO-1/2 as reduce-scatter + all-gather: the same bytes, twice the calls). ZeRO-3: a reduce-scatter
    of the gradients and an all-gather of each module's parameters at every forward and backward call."""
    if p <= 1:
        return 0.0
    engines = (stats["N_G"], stats["N_D"])
    if stage in (0, 1, 2):
        calls = 2 if stage == 0 else 4
        return sum(hierarchical_allreduce_s(n * bytes_per, p, net) for n in engines) + calls * call_overhead_s
    t = sum(0.5 * hierarchical_allreduce_s(n * bytes_per, p, net) for n in engines)
    for group, n in (("G", stats["N_G"]), ("D", stats["N_D"])):
        per_module = n / max(1, stats[f"modules_{group}"])
        t += 2 * stats[f"calls_{group}"] * (0.5 * hierarchical_allreduce_s(per_module * bytes_per, p, net) + call_overhead_s)
    return t


def cluster_table(stats: dict, args) -> list[str]:
    """Weak-scaling efficiency at 8/64/256 GPUs for ZeRO 0/2/3 and the stage the model recommends."""
    net = H200_CLUSTER
    compute = stats["flops_per_sample"] * args.batch_per_gpu / (args.tflops * 1e12 * args.mfu)
    busy = compute * (1 + args.imbalance)
    lines = [f"  8x H200 per node (NVLink {net['bw_intra'] / 1e9:.0f} GB/s), 400 Gb/s per GPU between nodes "
             f"({net['bw_inter'] / 1e9:.0f} GB/s); fp32 gradients; compute {compute * 1e3:.1f} ms/step at "
             f"{args.batch_per_gpu}/GPU ({args.tflops} TFLOP/s x MFU {args.mfu}), imbalance {args.imbalance:.0%}, "
             f"{args.call_overhead_us:.0f} us per collective call",
             f"  {'GPUs':>6}" + "".join(f"{'ZeRO-' + str(s) + ' eff':>13}" for s in (0, 2, 3))]
    best = {}
    for p in GPUS:
        effs = {s: compute / (busy + cluster_comm_s(stats, s, p, net, 4, args.call_overhead_us * 1e-6)) for s in (0, 2, 3)}
        best[p] = effs
        lines.append(f"  {p:>6}" + "".join(f"{effs[s]:>13.3f}" for s in (0, 2, 3)))
    at = max(GPUS)
    top = max(best[at], key=best[at].get)
    stage = 2 if best[at][2] >= best[at][top] - 0.01 else top
    state_gb = (stats["N_G"] + stats["N_D"]) * 16 / 1e9  # fp32 weights + gradients + Adam moments
    why = ("ZeRO-2 is within 1% of the best and shards gradients and Adam state" if stage == 2 else
           f"ZeRO-2 costs {best[at][top] - best[at][2]:.1%} at {at} GPUs for its second collective per engine, and "
           f"sharding saves little: weights, gradients and Adam state are {state_gb:.1f} GB per GPU in all")
    lines.append(f"  recommended: ZeRO-{stage} ({why}; ZeRO-3 loses {best[at][top] - best[at][3]:.0%} at {at} GPUs "
                 f"to its per-module gathers)")
    return lines


def add_module_counts(cfg, stats: dict) -> dict:
    from crossnet_dist.methods import build_method

    with torch.device("meta"):
        method = build_method(cfg)
    for group, mods in (("G", method.generators), ("D", method.discriminators)):
        stats[f"modules_{group}"] = sum(1 for m in mods.modules() if any(True for _ in m.parameters(recurse=False)))
    return stats


def stats_for(cfg) -> dict:
    return add_module_counts(cfg, model_stats(cfg))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflops", type=float, default=989.0, help="bf16 dense peak per GPU (H100/H200 SXM: 989)")
    parser.add_argument("--mfu", type=float, default=0.35, help="model FLOPs utilisation (bench/gpu_check.py measures it)")
    parser.add_argument("--imbalance", type=float, default=0.02, help="waiting on the slower rank / compute")
    parser.add_argument("--call-overhead-us", type=float, default=300.0, help="host cost per collective call")
    parser.add_argument("--cluster-batch", type=int, default=4, help="batch per GPU (the table is also printed at 1)")
    args = parser.parse_args()
    from crossnet_dist.config import load_config

    stats = stats_for(load_config(None, []))
    print(f"paper defaults: G {stats['N_G'] / 1e6:.2f} M params, D {stats['N_D'] / 1e6:.2f} M, "
          f"{stats['flops_per_sample'] / 1e9:.1f} GFLOP/sample/step, param-module calls G {stats['calls_G']} "
          f"(of {stats['modules_G']}) D {stats['calls_D']} (of {stats['modules_D']})")
    for batch in sorted({1, args.cluster_batch}):
        print(f"batch {batch}/GPU (bf16 autocast, fp32 gradient all-reduce):")
        for line in cluster_table(stats, argparse.Namespace(**{**vars(args), "batch_per_gpu": batch})):
            print(line)


if __name__ == "__main__":
    main()
