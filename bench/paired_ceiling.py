"""The paired ceiling of a quality table: the recipe's generators trained on the TRUE pairs.

An unpaired method never sees which Twitter emoji belongs to which Google one; this translator does:
each direction's generator (the recipe's Encoder + Decoder, as CrossNet and CycleGAN translate) is
trained with plain L1 against the true counterpart, on the pairs of the training split only (the
validation split held out, as for every row). It is what an unpaired method can approach, not a
competitor. Its checkpoints are ordinary serving checkpoints (method cyclegan: the same modules
without translators), so they are scored by the same `evaluate` as every other row.

    python bench/paired_ceiling.py --steps 4000      # trains, prints the val/test scores of each checkpoint
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def training_pairs(data: str, image_size: int) -> tuple["torch.Tensor", "torch.Tensor"]:  # noqa: F821
    """(A, B) uint8 tensors of the names both trainA/ and trainB/ hold, validation split excluded."""
    import torch

    from crossnet_dist.evaluation.paired import pair_indices
    from crossnet_dist.evaluation.split_images import read_domain

    a, b = (read_domain(data, "train", d, image_size) for d in ("a", "b"))
    pairs = pair_indices(a.names, b.names)
    if not pairs:
        raise SystemExit(f"{data}: no training pairs (no file name is in both trainA/ and trainB/): no ceiling row")
    ia, ib = torch.tensor(list(pairs)), torch.tensor(list(pairs.values()))
    return a.pixels[ia], b.pixels[ib]


def train_ceiling(cfg, data: str, steps: int, every: int, out: Path, threads: int = 1) -> list[tuple[int, str, float]]:
    """Trains both directions for `steps` steps of cfg.data.batch_size pairs (Adam at the recipe's
    lr and betas, EMA as the recipe); returns [(step, serving checkpoint, CPU-seconds)] every `every`."""
    import torch
    from omegaconf import OmegaConf

    from crossnet_dist.checkpoints.files import atomic_save
    from crossnet_dist.checkpoints.translator import serving_payload
    from crossnet_dist.config import to_container
    from crossnet_dist.evaluation.split_images import to_unit_range
    from crossnet_dist.methods import build_method
    from crossnet_dist.training.ema import build_ema

    torch.set_num_threads(threads)
    torch.manual_seed(cfg.train.seed)
    cfg = OmegaConf.merge(cfg, {"method": "cyclegan"})  # the translation modules alone
    method = build_method(cfg, inference=True)
    ema = build_ema(method, cfg.train.ema_decay)
    opt = torch.optim.Adam(method.parameters(), lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2))
    pixels_a, pixels_b = training_pairs(data, cfg.model.image_size)
    generator = torch.Generator().manual_seed(cfg.train.seed)
    out.mkdir(parents=True, exist_ok=True)
    points, busy = [], 0.0
    print(f"    paired ceiling: {len(pixels_a)} training pairs, batch {cfg.data.batch_size}", flush=True)
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        pick = torch.randint(len(pixels_a), (cfg.data.batch_size,), generator=generator)
        x_a, x_b = to_unit_range(pixels_a[pick]), to_unit_range(pixels_b[pick])
        if cfg.data.flip:  # the same flip for both images of a pair
            flip = torch.rand(len(pick), generator=generator) < 0.5
            x_a[flip], x_b[flip] = x_a[flip].flip(-1), x_b[flip].flip(-1)
        loss = (method.translate(x_a, "a2b") - x_b).abs().mean() + (method.translate(x_b, "b2a") - x_a).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update()
        busy += time.perf_counter() - t0
        if step % every == 0:
            path = out / f"ceiling_{step:08d}.pt"
            atomic_save(serving_payload(method, to_container(cfg), step, ema), path)
            points.append((step, str(path), busy * threads))
            print(f"    paired ceiling: step {step}, L1 {loss.item() / 2:.4f}, {busy:.0f} s", flush=True)
    return points


def main(argv=None) -> int:
    from crossnet_dist.config import load_config
    from crossnet_dist.evaluation import evaluate

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "jobs/configs/emoji.yaml"))
    p.add_argument("--data", default=str(REPO / "data/emoji"))
    p.add_argument("--out", default=str(REPO / "runs/paired-ceiling"))
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    cfg = load_config(args.config, [f"data.root={args.data}", f"data.batch_size={args.batch_size}"])
    for step, path, cpu_s in train_ceiling(cfg, args.data, args.steps, args.eval_every, Path(args.out), args.threads):
        for split in ("val", "test"):
            m = evaluate(path, data=args.data, split=split, metrics=["paired"], device="cpu")
            print(f"step {step} ({cpu_s:.0f} CPU-s) {split}: L1 ratio a2b {m['paired_l1_a2b_ratio']:.3f} "
                  f"b2a {m['paired_l1_b2a_ratio']:.3f}, SSIM ratio {m['paired_ssim_a2b_ratio']:.3f} / "
                  f"{m['paired_ssim_b2a_ratio']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
