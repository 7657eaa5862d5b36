"""`crossnet tune CONFIG [key=value ...] [--resume NAME] [--address ADDR]`."""

from __future__ import annotations

import argparse


def add_tune_parser(sub) -> None:
    tune = sub.add_parser(
        "tune",
        help="search the loss weights with a Ray Tune campaign (each trial a distributed training run)",
        description="Run a Ray Tune campaign from CONFIG (the `tune:` section: space, scheduler, searcher, "
        "num_samples, metric, time_budget_s, ...; an empty tune.space searches the five CrossNet loss weights). "
        "Each trial trains on Ray Train workers (dist.*) and is scored on the held-out split at every checkpoint; "
        "ASHA stops the worst early. Results go to <tune.storage_path or dist.storage_path>/<campaign>/: "
        "trials.csv, trials.md, metric_vs_params.png and best/ (generator.pt + best.json, for "
        "`crossnet serve --checkpoint <campaign>/best/`).",
    )
    tune.add_argument("config", help="YAML config file (with --resume: only its storage path is used)")
    tune.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    tune.add_argument("--resume", default=None, metavar="NAME",
                      help="continue campaign NAME (a folder under the storage path): finished and errored trials "
                      "are kept, unfinished ones continue from their last checkpoint, pending ones start")
    tune.add_argument("--address", default=None,
                      help="Ray cluster address (default: dist.address, else RAY_ADDRESS, else a local Ray on 127.0.0.1)")
    tune.set_defaults(func=run_tune_command)


def run_tune_command(args: argparse.Namespace) -> int:
    from crossnet_dist.config import load_config
    from crossnet_dist.tuning.campaign import run_campaign

    cfg = load_config(args.config, args.overrides)
    result = run_campaign(cfg, address=args.address, resume=args.resume)
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("completed", "stopped", "errored", "not run", "no report")
                       if result.count(s))
    print(f"campaign {result.name}: {len(result.rows)} trials ({counts})")
    print(f"table: {result.files['markdown']} (csv: {result.files['csv']}); plot: {result.files['plot']}")
    if result.best is not None:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best.params.items())
        print(f"best: trial {result.best.trial_id}, {result.metric} = {result.best.value:.4f} ({params})")
        print(f"best pointer: {result.best_url} (crossnet serve --checkpoint {result.best_url})")
    else:
        print("no trial completed: no best pointer written")
    if result.count("no report"):
        print("error: some trials never reported (their workers did not start?)")
        return 1
    return 0 if result.best is not None else 1
