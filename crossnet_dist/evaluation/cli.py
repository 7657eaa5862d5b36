"""`crossnet eval`: score a checkpoint on a held-out split and write the HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _eval(args: argparse.Namespace) -> int:
    from crossnet_dist.evaluation.config import load_eval_config
    from crossnet_dist.evaluation.features import InceptionWeightsMissing
    from crossnet_dist.evaluation.paired import NoPairsError
    from crossnet_dist.evaluation.report import run_folder, write_report
    from crossnet_dist.evaluation.scoring import run_evaluation
    from crossnet_dist.storage import StorageError

    overrides = list(args.overrides)
    flags = {
        "inception_weights": args.inception_weights, "cache_dir": args.cache_dir, "device": args.device,
        "batch_size": args.batch_size, "max_images": args.max_images, "samples": args.samples,
    }
    overrides += [f"{k}={v}" for k, v in flags.items() if v is not None]
    if args.no_cache:
        overrides.append("cache_dir=null")
    if args.metrics:
        overrides.append(f"metrics=[{args.metrics}]")
    cfg = load_eval_config(args.config, overrides)
    if args.out is None and "://" in str(args.checkpoint):
        print("crossnet eval: error: --out is required for a remote checkpoint", file=sys.stderr)
        return 2
    try:
        result = run_evaluation(args.checkpoint, args.data, args.split, cfg)
    except (InceptionWeightsMissing, StorageError, NoPairsError) as err:
        print(f"crossnet eval: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else run_folder(Path(args.checkpoint)) / f"eval_{args.split}"
    page = write_report(result, out)
    for key in sorted(result.metrics):
        print(f"  {key} = {result.metrics[key]:.5g}")
    for line in paired_summary(result.metrics):
        print(line)
    for key, why in sorted(result.info["skipped_metrics"].items()):
        print(f"  {key}: not computed ({why})")
    cache = result.info["feature_cache"]
    print(f"feature cache: {cache['hits']} hits, {cache['misses']} misses ({cache['dir']})")
    print(f"report: {page}")
    return 0


def paired_summary(metrics: dict[str, float]) -> list[str]:
    """One line per direction with pairs: the translation against doing nothing."""
    lines = []
    for d in ("a2b", "b2a"):
        if f"paired_l1_{d}" in metrics:
            k = f"paired_%s_{d}"
            lines.append(
                f"paired {d}: L1 {metrics[k % 'l1']:.4f} vs do-nothing {metrics[k % 'l1' + '_identity_baseline']:.4f} "
                f"(ratio {metrics[k % 'l1' + '_ratio']:.3f}, lower is better); SSIM {metrics[k % 'ssim']:.4f} vs "
                f"{metrics[k % 'ssim' + '_identity_baseline']:.4f} (ratio {metrics[k % 'ssim' + '_ratio']:.3f}, higher is better)"
            )
    return lines


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="score a checkpoint on a held-out split (FID/KID, fd_efflite0, cycle L1) and write an HTML report",
        description="Translate a held-out split (test: testA/ testB/; val: the validation split) in both directions "
        "and score it: "
        "cycle L1 (and latent cross-identity L1 for CrossNet training checkpoints), Frechet/kernel distances "
        "on EfficientNet-Lite0 features (fd_efflite0/kd_efflite0, weights ship with a pip package), and "
        "FID/KID when an Inception-v3 weights file is given. Writes metrics.json and index.html to OUT.",
    )
    p.add_argument("overrides", nargs="*", help="eval config key=value overrides, e.g. kid_subsets=50")
    p.add_argument("--checkpoint", required=True, help="generator.pt or a training checkpoint (checkpoints/step_*.pt)")
    p.add_argument("--data", default=None, help="URL or path holding testA/ testB/ (default: the checkpoint's data.root)")
    p.add_argument("--split", default="test", choices=("test", "val", "train"),
                   help="test (testA/ testB/, default), val (the validation split of `crossnet data split`) or train")
    p.add_argument("--out", default=None, help="report folder (default: <run folder>/eval_<split>)")
    p.add_argument("--config", default=None, help="YAML file with an eval: section")
    p.add_argument("--metrics", default=None, help="comma-separated groups: cycle, efflite0, inception, paired")
    p.add_argument("--inception-weights", default=None, metavar="PATH",
                   help="Inception-v3 FID weights (pt_inception-2015-12-05-6726825d.pth); enables FID/KID")
    p.add_argument("--cache-dir", default=None, help="feature cache folder (default ~/.cache/crossnet/features)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-images", type=int, default=None, help="per domain; 0 = all")
    p.add_argument("--samples", type=int, default=None, help="sample rows per direction in the report")
    p.set_defaults(func=_eval)
    return p
