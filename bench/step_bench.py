"""In-process step benchmarks (no Ray): the bare PyTorch loop the distributed trainer is compared
with, the FLOPs of one CrossNet training step, the machine's fp32 matmul peak, and A/B timings of
step-level optimisations. Used by bench/run_all.py; runnable alone:

    python bench/step_bench.py [--steps 20] [--threads 1]

Model/data: exactly what bench/train_scaling.py trains (jobs/configs/tiny.yaml with its overrides,
tests.dist_fixtures:memory_loader batches), so a bare step here and a worker step there do the
same arithmetic.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch  # noqa: E402


def bench_config(image_size: int = 32, gen_channels: int = 16, batch_size: int = 4, extra=()):
    from crossnet_dist.config import load_config

    return load_config(REPO / "jobs" / "configs" / "tiny.yaml", [
        f"model.image_size={image_size}", f"data.load_size={image_size}", f"model.gen_channels={gen_channels}",
        f"model.disc_channels={gen_channels}", f"data.batch_size={batch_size}", *extra,
    ])


def batches(cfg, n: int = 4):
    from tests.dist_fixtures import memory_loader

    return list(memory_loader(cfg.data, image_size=cfg.model.image_size, seed=cfg.train.seed, n_batches=n).batches)


def build(cfg, channels_last: bool = False, compiled: bool = False):
    from crossnet_dist.image_pool import ImagePool
    from crossnet_dist.methods import build_method
    from crossnet_dist.training.optimizers import adam
    from crossnet_dist.training.seed import seed_everything

    seed_everything(cfg.train.seed)
    method = build_method(cfg)
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    if compiled:  # what train.compile does
        from crossnet_dist.training.compile import compile_networks

        compile_networks(method)
    g_opt = adam(method.generators.parameters(), cfg.optim, "generators")
    d_opt = adam(method.discriminators.parameters(), cfg.optim, "discriminators")
    pools = {d: ImagePool(cfg.optim.pool_size, seed=cfg.train.seed + i) for i, d in enumerate("ab")}
    return method, g_opt, d_opt, pools


def bare_loop(cfg, steps: int, warmup: int = 3, sync_metrics_every_step: bool = False,
              channels_last: bool = False, compiled: bool = False, segments: list | None = None) -> list[float]:
    """A bare PyTorch loop: the same networks, losses, image pools and torch Adam (foreach) as the
    trainers, no project optimiser wrapper, no DeepSpeed, no Ray. Returns per-step wall times (s).
    Loss terms are summed as tensors and read once at the end, as the trainers do (LossWindow);
    sync_metrics_every_step=True is the old way: float() of every term, every step.
    `segments`, if given, receives per step the times between a data-parallel step's sync points:
    (G forward + backward, G update + D forward + backward, D update + the loss bookkeeping)."""
    method, g_opt, d_opt, pools = build(cfg, channels_last, compiled)
    data = batches(cfg)
    method.train()
    from crossnet_dist.training.loss_window import LossWindow

    times, sums, window = [], {}, LossWindow()
    for i in range(warmup + steps):
        b = data[i % len(data)]
        x_a, x_b = b["a"], b["b"]
        if channels_last:
            x_a, x_b = x_a.contiguous(memory_format=torch.channels_last), x_b.contiguous(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        for p in method.discriminators.parameters():
            p.requires_grad_(False)
        g_out = method.generator_step(x_a, x_b)
        g_opt.zero_grad(set_to_none=True)
        g_out.loss.backward()
        t1 = time.perf_counter()
        g_opt.step()
        for p in method.discriminators.parameters():
            p.requires_grad_(True)
        fakes = {d: pools[d].query(f) for d, f in g_out.fakes.items()}
        d_out = method.discriminator_step(x_a, x_b, fakes)
        d_opt.zero_grad(set_to_none=True)
        d_out.loss.backward()
        t2 = time.perf_counter()
        d_opt.step()
        terms = {**{k: v.detach() for k, v in g_out.terms.items()}, **{k: v.detach() for k, v in d_out.terms.items()}}
        if sync_metrics_every_step:  # before: float() of every term, every step (a device sync each)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        else:  # the trainers now: tensors summed on the device, read once per log window
            window.add(terms)
        if i >= warmup:
            t3 = time.perf_counter()
            times.append(t3 - t0)
            if segments is not None:
                segments.append((t1 - t0, t2 - t1, t3 - t2))
    window.means()
    return times


def step_flops(cfg) -> dict[str, int]:
    """FLOPs of one training step (G forward+backward, D forward+backward; optimiser excluded),
    counted by torch.utils.flop_counter (convolutions and matmuls: 2 FLOPs per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    method, _, _, pools = build(cfg)
    b = batches(cfg)[0]
    out = {}
    with FlopCounterMode(display=False) as fc:
        g_out = method.generator_step(b["a"], b["b"])
    out["G_fwd"] = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        g_out.loss.backward()
    out["G_bwd"] = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        d_out = method.discriminator_step(b["a"], b["b"], {d: f.detach() for d, f in g_out.fakes.items()})
    out["D_fwd"] = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        d_out.loss.backward()
    out["D_bwd"] = fc.get_total_flops()
    out["total"] = sum(out.values())
    return out


def param_counts(cfg) -> dict[str, int]:
    method, _, _, _ = build(cfg)
    return {"G": sum(p.numel() for p in method.generators.parameters()),
            "D": sum(p.numel() for p in method.discriminators.parameters())}


def matmul_peak(n: int = 1024, seconds: float = 1.5) -> float:
    """Measured fp32 FLOP/s of torch.mm on n x n matrices (best of repeated timings)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, started = float("inf"), time.perf_counter()
    while time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def ab(cfg, steps: int, variants: dict[str, dict], rounds: int = 2) -> dict[str, float]:
    """Median step time of each variant, interleaved over `rounds` rounds against machine-load drift."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, kw in variants.items():
            times[name] += bare_loop(cfg, steps, **kw)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = bench_config()
    flops = step_flops(cfg)
    peak = matmul_peak()
    res = ab(cfg, args.steps, {"baseline": {}, "sync_every_step": {"sync_metrics_every_step": True},
                               "channels_last": {"channels_last": True}})
    out = {"threads": args.threads, "flops": flops, "peak": peak, "step_s": res}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
