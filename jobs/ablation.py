"""The CrossNet paper's ablation (Fig. 5) as one Ray job: every setting x seed trains in parallel.

    ray job submit --working-dir . -- python jobs/ablation.py --data s3://data/horse2zebra \\
        --config jobs/configs/crossnet.yaml --seeds 0 1 2 --steps 20000 --out runs/ablation

Locally (no RAY_ADDRESS) it starts a Ray instance on 127.0.0.1. Each run is a Ray task holding
--cpus-per-run CPUs (and --gpus-per-run GPUs) that trains with the single-process trainer
(`--trainer single`, see crossnet_dist.evaluation.ablation.TRAINERS) and evaluates on the test
split; the driver then writes ablation.md, ablation.csv, runs.csv and ablation.png to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from crossnet_dist.evaluation.ablation import ABLATION, SETTINGS, TRAINERS, run_setting, write_tables


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="URL or path with trainA/ trainB/ testA/ testB/")
    p.add_argument("--config", default="jobs/configs/tiny.yaml", help="base training config")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, required=True, help="training steps per run (the same budget for every setting)")
    p.add_argument("--settings", nargs="+", default=list(ABLATION), choices=list(SETTINGS), metavar="SETTING",
                   help=f"default: the seven Fig. 5 columns; any of: {', '.join(SETTINGS)}")
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--trainer", default="single", choices=sorted(TRAINERS))
    p.add_argument("--cpus-per-run", type=float, default=1)
    p.add_argument("--gpus-per-run", type=float, default=0)
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance (default: all)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else start one locally)")
    p.add_argument("--inception-weights", default=None, help="adds FID/KID to the evaluation")
    p.add_argument("--cache-dir", default=None, help="feature cache shared by every run (default <out>/feature_cache)")
    p.add_argument("--max-eval-images", type=int, default=0, help="per domain of the test split; 0 = all")
    p.add_argument("--resume", action="store_true",
                   help="keep the runs already recorded in <out>/runs.json and train only the missing ones")
    p.add_argument("overrides", nargs="*", help="extra dotted config overrides for every run")
    return p.parse_args(argv)


def init_ray(args: argparse.Namespace):
    address = args.address or os.environ.get("RAY_ADDRESS")
    if not address:
        # Local: keep every socket on the loopback interface. Ray reads this when it is first
        # imported, so it must be set before `import ray` (NOTES-stack.md).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if address:
        ray.init(address=address)
    else:
        # address="local": a new instance even if another local cluster is running on this machine
        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1")
    return ray


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    data = args.data if "://" in args.data else str(Path(args.data).resolve())
    eval_options = {
        "device": "cuda" if args.gpus_per_run else "cpu",
        "cache_dir": args.cache_dir or str(out / "feature_cache"),
        "inception_weights": args.inception_weights,
        "max_images": args.max_eval_images,
    }
    ray = init_ray(args)
    task = ray.remote(num_cpus=args.cpus_per_run, num_gpus=args.gpus_per_run)(run_setting)
    threads = max(1, int(args.cpus_per_run))
    runs_json = out / "runs.json"
    records = json.loads(runs_json.read_text()) if args.resume and runs_json.is_file() else []
    have = {(r["setting"], r["seed"]) for r in records if r["steps"] == args.steps}
    pending = {
        task.remote(name, seed, str(Path(args.config).resolve()), data, str(out), args.steps, args.overrides,
                    args.trainer, eval_options, threads): (name, seed)
        for name in args.settings for seed in args.seeds if (name, seed) not in have
    }
    print(f"ablation: {len(pending)} runs ({len(args.settings)} settings x seeds {args.seeds}, {len(have)} already "
          f"recorded), {args.steps} steps each -> {out}")
    failed, t0 = [], time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        name, seed = pending.pop(done[0])
        try:
            record = ray.get(done[0])
        except Exception as err:  # one failed run must not lose the others
            failed.append((name, seed, str(err).splitlines()[-1]))
            print(f"  FAILED {name} seed {seed}: {failed[-1][2]}", file=sys.stderr)
            continue
        records.append(record)
        runs_json.write_text(json.dumps(records, indent=2) + "\n")  # a killed driver loses no finished run
        m = record["metrics"]
        print(f"  [{len(records) + len(failed)}/{len(records) + len(failed) + len(pending)}] {name} seed {seed}: "
              f"paired L1 {m.get('paired_l1_a2b', float('nan')):.3f} / {m.get('paired_l1_b2a', float('nan')):.3f}, "
              f"fd_efflite0 {m.get('fd_efflite0', float('nan')):.2f} "
              f"({record['train_s']:.0f} s train, {time.perf_counter() - t0:.0f} s elapsed)", flush=True)
    header = (f"# CrossNet ablation (Fig. 5 settings)\n\ndata `{args.data}`, base config `{args.config}`, "
              f"{args.steps} steps per run, seeds {args.seeds}, trainer `{args.trainer}`, test split, "
              f"overrides {args.overrides or 'none'}, {time.perf_counter() - t0:.0f} s wall")
    recorded = {r["setting"] for r in records}
    paths = write_tables(records, [s for s in SETTINGS if s in recorded], out, header)
    print(paths["markdown"].read_text())
    for key, path in paths.items():
        print(f"{key}: {path}")
    ray.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
