"""Loss balance of a trained CrossNet: each weighted eq. 5 term's value and the gradient norm it sends
to each generator-side module, on held-out batches, beside the latent codes' scale.

    python bench/loss_balance.py runs/bench-quality/crossnet-local-s0/checkpoints/step_00006000.pt [--data data/emoji]

A term whose gradient dwarfs the others on a module decides what that module learns; the
translation a2b is D_b(E_ab(x_a)), so the terms reaching E_ab and D_b through that path (GAN,
and, through T_ba, cross-identity) are what shape the translation itself, while identity trains
D_b(E_ab(x_b)) on the target domain's own images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODULES = ("E_ab", "D_b", "E_ba", "D_a", "T_ab", "T_ba")


def term_gradients(method, x_a: torch.Tensor, x_b: torch.Tensor) -> dict[str, dict[str, float]]:
    """{term: {"value": weighted value, module: grad norm of the weighted term}}."""
    from crossnet_dist.training.step import set_requires_grad

    set_requires_grad(method.discriminators, False)
    names = [t for t in ("gan", "identity", "cross_translation", "cross_identity", "latent_cycle") if method.weights[t] > 0]
    out = {}
    for term in names:
        method.zero_grad(set_to_none=True)
        step = method.generator_step(x_a, x_b)
        weighted = method.weights[term] * step.terms[term]
        weighted.backward()
        row = {"value": float(weighted)}
        for name in MODULES:
            grads = [p.grad.flatten() for p in method.generators[name].parameters() if p.grad is not None]
            row[name] = float(torch.cat(grads).norm()) if grads else 0.0
        out[term] = row
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a --local training checkpoint (checkpoints/step_*.pt) of method crossnet")
    p.add_argument("--data", default=None, help="data set with testA/ testB/ (default: the checkpoint's data.root)")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)

    from crossnet_dist.checkpoints.files import TRAIN_FORMAT, load_checked
    from crossnet_dist.config import config_from_container
    from crossnet_dist.evaluation.split_images import read_domain, to_unit_range
    from crossnet_dist.methods import build_method

    payload = load_checked(args.checkpoint, TRAIN_FORMAT)
    cfg = config_from_container(payload["config"])
    if cfg.method != "crossnet":
        raise SystemExit(f"{args.checkpoint}: method {cfg.method!r}, expected crossnet")
    method = build_method(cfg)
    method.generators.load_state_dict(payload["generators"])
    method.discriminators.load_state_dict(payload["discriminators"])
    data = args.data or cfg.data.root
    n = args.batches * args.batch_size
    a = to_unit_range(read_domain(data, "test", "a", cfg.model.image_size, max_images=n).pixels)
    b = to_unit_range(read_domain(data, "test", "b", cfg.model.image_size, max_images=n).pixels)
    totals: dict[str, dict[str, float]] = {}
    for i in range(0, min(len(a), len(b)), args.batch_size):
        for term, row in term_gradients(method, a[i : i + args.batch_size], b[i : i + args.batch_size]).items():
            acc = totals.setdefault(term, dict.fromkeys(row, 0.0))
            for k, v in row.items():
                acc[k] += v / args.batches
    with torch.no_grad():
        g = method.generators
        z_b, z_a = g["E_ab"](a[: args.batch_size]), g["E_ba"](b[: args.batch_size])
    print(f"{args.checkpoint} (step {payload['step']}): weighted terms and gradient norms per module, "
          f"mean of {args.batches} held-out batches of {args.batch_size}")
    print(f"{'term':>18} | {'value':>7} | " + " | ".join(f"{m:>7}" for m in MODULES))
    for term, row in totals.items():
        print(f"{term:>18} | {row['value']:7.4f} | " + " | ".join(f"{row[m]:7.4f}" for m in MODULES))
    print(f"latent scale: mean |z_b| = {z_b.abs().mean():.3f}, mean |z_a| = {z_a.abs().mean():.3f} "
          f"(images: mean |x| = {a.abs().mean():.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
