"""Time-to-quality benchmark: CrossNet and CycleGAN trained on the same data, size, batch and step
budget, between a floor (doing nothing) and a ceiling (the same generators trained on the true pairs).

    python bench/quality.py            # 30 minutes of training per run (about 2 hours in all on 2 CPU cores)
    python bench/quality.py --steps 4000  # a step budget instead of a time budget
    python bench/quality.py --quick    # a few minutes: checks that it runs
    python bench/quality.py --methods crossnet --steps 1500 --set model.upsample=transposed   # one recipe change

Each run trains through the product's path, a Ray Train job with DeepSpeed workers (`--trainer
ray`, default: 2 workers, ZeRO-2, data streamed from the prepared folder by the training loader),
plus a `--local` comparison row (the single-process trainer with the same global batch, `--local-row`). Runs are sequential,
so each one has the machine to itself and its CPU-seconds (training wall time x CPU cores used)
compare. Every `--eval-every` steps a checkpoint is kept and scored on the VALIDATION split (the
curves); each run's best checkpoint on val (mean paired L1 ratio) is then scored once on the TEST
split, which is what the result table reports. Selection never reads testA/ testB/. Scores: paired
L1 and SSIM against the true counterpart and their ratio to doing nothing (the input as its own
prediction), and fd_efflite0 against its identity baseline (the untranslated inputs). The paired
ceiling (bench/paired_ceiling.py: the recipe's generators trained with L1 on the training pairs,
as many steps, selected on val) is its own row; a data set without pairs has none.
A run with train.ema_decay is scored on its averaged weights (what is served) and, with
--eval-raw, also on its raw weights. Prints the tables, writes quality.json, quality.md and the
plot quality_vs_time.png under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

for key, value in {"DS_ACCELERATOR": "cpu", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                   "GLOO_SOCKET_IFNAME": "lo", "RAY_DEDUP_LOGS": "1"}.items():
    os.environ.setdefault(key, value)

COLUMNS = ("paired_l1_a2b_ratio", "paired_l1_b2a_ratio", "paired_ssim_a2b", "paired_ssim_b2a",
           "paired_ssim_a2b_ratio", "paired_ssim_b2a_ratio", "fd_a2b_ratio", "fd_b2a_ratio")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "jobs/configs/emoji.yaml"))
    p.add_argument("--data", default=str(REPO / "data/emoji"), help="prepared emoji set (made if missing)")
    p.add_argument("--out", default=str(REPO / "runs/bench-quality"))
    p.add_argument("--methods", default="crossnet,cyclegan")
    p.add_argument("--seeds", default="0")
    p.add_argument("--minutes", type=float, default=None,
                   help="training wall-clock minutes per run (train.max_minutes; default 30 unless --steps is given)")
    p.add_argument("--steps", type=int, default=None, help="steps per run instead of a time budget")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--trainer", choices=("ray", "local"), default="ray")
    p.add_argument("--local-row", action=argparse.BooleanOptionalAction, default=True,
                   help="also train the first method with --local (default on)")
    p.add_argument("--workers", type=int, default=2, help="Ray Train workers (1 CPU each)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of a --local run")
    p.add_argument("--eval-raw", action="store_true", help="EMA runs: also score the raw weights")
    p.add_argument("--max-images", type=int, default=0, help="test images per domain scored; 0 = all")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run (repeatable)")
    p.add_argument("--ceiling", action=argparse.BooleanOptionalAction, default=True,
                   help="also train the paired ceiling (default on; needs pairs in the training split)")
    p.add_argument("--quick", action="store_true", help="300 steps, scored every 150, no local row")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.eval_every, args.local_row, args.max_images = 300, 150, False, args.max_images or 100
    if args.minutes is None:
        args.minutes = 0.0 if args.steps else 30.0
    args.steps = args.steps or 4000  # with --minutes: the sample-grid interval's reference only
    if args.minutes < 0:
        p.error("--minutes must be >= 0")
    if args.eval_every < 1 or (not args.minutes and args.steps < args.eval_every):
        p.error("--eval-every must be in [1, --steps]")
    return args


def ensure_data(url: str) -> None:
    """The emoji set with its validation split (an older prepared folder gets its split added)."""
    from crossnet_dist.data.prepare import make_val_split, prepare

    if not (Path(url) / "testB").is_dir():
        print(f"preparing the emoji set in {url}", flush=True)
        prepare("emoji", url)
    elif make_val_split(url)["written"]:
        print(f"{url}: wrote its validation split (splits.json)", flush=True)


def run_config(args, method: str, seed: int, trainer: str, folder: Path):
    from crossnet_dist.config import load_config

    every = args.eval_every
    overrides = [
        f"method={method}", f"data.root={args.data}", f"train.seed={seed}",
        f"train.max_steps={0 if args.minutes else args.steps}", f"train.max_minutes={args.minutes}",
        f"train.out_dir={folder}", "train.progress=false", f"train.checkpoint_every={every}", "train.keep_checkpoints=0",
        f"train.sample_every={args.steps if not args.minutes else 10 * every}", f"dist.checkpoint_every={every}",
        "dist.keep_checkpoints=0",
        f"dist.num_workers={args.workers}", "dist.cpus_per_worker=1", f"dist.storage_path={folder / 'ray'}",
        "dist.run_name=run", "dist.max_failures=0", *args.overrides,
    ]
    if trainer in ("local", "paired"):  # one process takes the global batch of the distributed runs
        base = load_config(args.config, [f"data.root={args.data}", *args.overrides])
        overrides.append(f"data.batch_size={base.data.batch_size * args.workers}")
    cfg = load_config(args.config, overrides)
    if cfg.train.log_every > every or every % cfg.train.log_every:
        overrides.append(f"train.log_every={every}")
        cfg = load_config(args.config, overrides)
    return cfg


def train_ray(cfg) -> tuple[list[tuple[int, str, float]], float]:
    """Trains on Ray Train workers; returns [(step, checkpoint, CPU-seconds)] and the cores used."""
    from crossnet_dist.distributed.driver import train_distributed
    from crossnet_dist.storage.runs import resolve_storage

    result = train_distributed(cfg, progress=False)
    cores = cfg.dist.num_workers * cfg.dist.cpus_per_worker
    elapsed = {int(h["step"]): float(h["perf/elapsed_s"]) for h in result.history if "perf/elapsed_s" in h}
    windows = [h for h in result.history[1:] if "perf/data_wait_s" in h]  # the first window holds the warm-up
    if windows:
        wait = sum(h["perf/data_wait_s"] for h in windows) / sum(h["perf/step_time_s"] for h in windows)
        print(f"    data wait: {100 * wait:.1f}% of the step time (rank max, mean of {len(windows)} windows)", flush=True)
    where = resolve_storage(result.run_url, cfg.data.storage)
    points = []
    for step in range(cfg.dist.checkpoint_every, result.step + 1, cfg.dist.checkpoint_every):
        points.append((step, f"{where.fs_path}/step_{step:08d}", elapsed[step] * cores))
    return points, cores


def train_local(cfg, threads: int) -> tuple[list[tuple[int, str, float]], float]:
    import torch

    from crossnet_dist.data import build_train_loader
    from crossnet_dist.training.checkpoint import step_checkpoint_path
    from crossnet_dist.training.loop import Trainer

    torch.set_num_threads(threads)
    trainer = Trainer(cfg)
    trainer.fit(build_train_loader(cfg.data, image_size=cfg.model.image_size, seed=cfg.train.seed))
    wall, cumulative = 0.0, {}
    for line in (trainer.out_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        wall += rec["perf/step_time_s"] * cfg.train.log_every
        cumulative[rec["step"]] = wall
    folder = trainer.out_dir / "checkpoints"
    every = cfg.train.checkpoint_every
    return [
        (s, str(step_checkpoint_path(folder, s)), cumulative[s] * threads) for s in range(every, trainer.step + 1, every)
    ], threads


def score(checkpoint: str, cfg, trainer: str, args, split: str, raw: bool = False) -> dict[str, float]:
    """Paired and fd_efflite0 metrics of one checkpoint on `split` (its EMA weights unless raw)."""
    import pyarrow.fs as pafs
    import torch

    from crossnet_dist.checkpoints.files import load_checked
    from crossnet_dist.evaluation import evaluate

    with tempfile.TemporaryDirectory(prefix="crossnet-quality-") as tmp:
        path = Path(checkpoint)
        if trainer == "ray" and not checkpoint.endswith(".pt"):
            from crossnet_dist.distributed.checkpoint import serving_checkpoint

            score_cfg = cfg.copy()
            if raw:
                score_cfg.train.ema_decay = 0.0
            path = serving_checkpoint(checkpoint, pafs.LocalFileSystem(), score_cfg, 0, Path(tmp) / "generator.pt")
        elif raw:
            payload = load_checked(path, "crossnet-dist/train")
            payload["ema"] = None
            path = Path(tmp) / "raw.pt"
            torch.save(payload, path)
        m = evaluate(path, data=args.data, split=split, metrics=["paired", "efflite0"], max_images=args.max_images,
                     device="cpu")
    for d in ("a2b", "b2a"):
        m[f"fd_{d}_ratio"] = m[f"fd_efflite0_{d}"] / m[f"fd_efflite0_{d}_identity_baseline"]
    return m


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ensure_data(args.data)
    methods, seeds = args.methods.split(","), [int(s) for s in args.seeds.split(",")]
    plan = [(m, s, args.trainer) for s in seeds for m in methods]
    if args.local_row and args.trainer == "ray":
        plan += [(methods[0], s, "local") for s in seeds]
    if args.ceiling:
        plan += [("ceiling", s, "paired") for s in seeds]
    started = time.perf_counter()
    trained = []
    for method, seed, trainer in plan:
        folder = out / f"{method}-{trainer}-s{seed}"
        cfg = run_config(args, methods[0] if method == "ceiling" else method, seed, trainer, folder)
        budget = f"{args.minutes:g} minutes" if args.minutes else f"{args.steps} steps"
        if method == "ceiling":  # as many steps as the unpaired runs of its seed reached
            args.ceiling_steps = max([p[-1][0] for m, s, _, _, p in trained if s == seed and p] or [args.steps])
            budget = f"{args.ceiling_steps} steps"
        print(f"=== train {method} ({trainer}, seed {seed}): {budget}, checkpoint every {args.eval_every}", flush=True)
        t0 = time.perf_counter()
        points, cores = train_run(cfg, trainer, args, folder)
        print(f"--- {method} ({trainer}) trained in {time.perf_counter() - t0:.0f} s on {cores:g} cores", flush=True)
        trained.append((method, seed, trainer, cfg, points))
    rows, reported = [], []
    for method, seed, trainer, cfg, points in trained:
        variants = [("ema" if cfg.train.ema_decay else "raw", False)]
        if cfg.train.ema_decay and args.eval_raw and trainer != "paired":
            variants.append(("raw", True))
        if not points:
            print(f"    {method} ({trainer}, seed {seed}): no checkpoint within the budget; nothing to score", flush=True)
            continue
        for weights, raw in variants:
            curve = []
            for step, checkpoint, cpu_s in points:
                row = as_row(score(checkpoint, cfg, trainer, args, "val", raw), method, trainer, seed, weights, step, cpu_s)
                curve.append((row, checkpoint))
                print(format_row(row), flush=True)
            rows += [row for row, _ in curve]
            best, checkpoint = min(curve, key=lambda item: quality_of(item[0]))  # chosen on val only
            test = as_row(score(checkpoint, cfg, trainer, args, "test", raw), method, trainer, seed, weights,
                          best["step"], best["cpu_s"], split="test")
            reported.append(test)
            print(format_row(test), flush=True)
    total = time.perf_counter() - started
    from bench.quality_report import write_outputs

    write_outputs(rows, reported, out, args, total)
    return 0


def train_run(cfg, trainer: str, args, folder: Path) -> tuple[list[tuple[int, str, float]], float]:
    if trainer == "ray":
        return train_ray(cfg)
    if trainer == "local":
        return train_local(cfg, args.threads)
    from bench.paired_ceiling import train_ceiling

    return train_ceiling(cfg, args.data, args.ceiling_steps, args.eval_every, folder, args.threads), args.threads


def as_row(m: dict, method: str, trainer: str, seed: int, weights: str, step: int, cpu_s: float, split: str = "val") -> dict:
    return {"method": method, "trainer": trainer, "seed": seed, "weights": weights, "split": split, "step": step,
            "cpu_s": cpu_s, **{k: m[k] for k in COLUMNS}, "baseline_ssim_a2b": m["paired_ssim_a2b_identity_baseline"],
            "baseline_ssim_b2a": m["paired_ssim_b2a_identity_baseline"]}


def quality_of(row: dict) -> float:
    return (row["paired_l1_a2b_ratio"] + row["paired_l1_b2a_ratio"]) / 2


def format_row(r: dict) -> str:
    return (f"{r['method']:>9} {r['trainer']:>6} s{r['seed']} {r['weights']:>3} {r['split']:>4} {r['step']:>6} "
            f"{r['cpu_s']:>8.0f} | "
            + " ".join(f"{r[k]:.3f}" for k in COLUMNS))


if __name__ == "__main__":
    sys.exit(main())
