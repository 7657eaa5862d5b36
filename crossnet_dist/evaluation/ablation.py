"""The CrossNet paper's ablation (Fig. 5): GAN+Id, the paper's five latent-loss settings, CycleGAN; and UNIT, XGAN.

Every setting trains from the same base config, data, step budget and seeds, and is scored by
the same evaluation; `summarise` averages over seeds and `write_tables` writes the table
(markdown + CSV) and a bar chart with one standard deviation as error bars.

Training goes through `TRAINERS[name](cfg) -> checkpoint path`. Only the single-process trainer
is registered here; the distributed trainer plugs in by adding an entry with the same signature.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from statistics import mean, stdev
from typing import Any, Callable, Sequence


def _crossnet_with(*terms: str) -> list[str]:
    """CrossNet with GAN + Id (always on in Fig. 5) and only the named latent losses of eq. 5."""
    latent = {"CTC": "cross_translation", "ZId": "cross_identity", "ZCyc": "latent_cycle"}
    return ["method=crossnet", *[f"loss.crossnet.{key}=0" for name, key in latent.items() if name not in terms]]


# Fig. 5's columns, left to right (GAN and Id on in each), with GAN+Id alone first as a seventh.
# Weights not set to 0 keep the base config's values (eq. 5: 3, 6, 6).
ABLATION: dict[str, list[str]] = {
    "GAN+Id": _crossnet_with(),
    "CTC": _crossnet_with("CTC"),
    "ZId": _crossnet_with("ZId"),
    "CTC+ZId": _crossnet_with("CTC", "ZId"),
    "ZId+ZCyc": _crossnet_with("ZId", "ZCyc"),
    "CTC+ZId+ZCyc (CrossNet)": _crossnet_with("CTC", "ZId", "ZCyc"),
    "CycleGAN": ["method=cyclegan"],
}
# The other methods at the same budget, for a method comparison (`--settings UNIT XGAN CycleGAN ...`),
# on the base config's optimiser values where it sets them (the emoji recipe: lr 5e-4), their papers'
# otherwise (betas, history pool: the method defaults).
METHOD_COMPARISON: dict[str, list[str]] = {"UNIT": ["method=unit"], "XGAN": ["method=xgan"]}
SETTINGS: dict[str, list[str]] = {**ABLATION, **METHOD_COMPARISON}
# Paired figures (the same emoji in both vendors' art) first, then the feature distances.
TABLE_METRICS = (
    "paired_l1_a2b", "paired_l1_b2a", "paired_ssim_a2b", "paired_ssim_b2a",
    "fd_efflite0_a2b", "fd_efflite0_b2a", "kd_efflite0", "cycle_l1", "fid_a2b", "fid_b2a",
)
HIGHER_IS_BETTER = ("paired_ssim",)
# The paper's Fig. 5 (horse2zebra, FID, lower is better): its six columns, GAN+Id not reported.
PAPER_FIG5_FID = {
    "b2a": {"CTC": 89.3, "ZId": 88.7, "CTC+ZId": 85.9, "ZId+ZCyc": 84.8, "CTC+ZId+ZCyc (CrossNet)": 81.2, "CycleGAN": 142.2},
    "a2b": {"CTC": 267.8, "ZId": 185.2, "CTC+ZId": 179.5, "ZId+ZCyc": 181.1, "CTC+ZId+ZCyc (CrossNet)": 154.4,
            "CycleGAN": 173.1},
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower().replace("__", "_")


def train_single_process(cfg) -> Path:
    """The single-process trainer on the streaming loader; returns the final training checkpoint."""
    from crossnet_dist.data import build_train_loader
    from crossnet_dist.training.checkpoint import step_checkpoint_path
    from crossnet_dist.training.loop import Trainer

    trainer = Trainer(cfg)
    trainer.fit(build_train_loader(cfg.data, image_size=cfg.model.image_size, seed=cfg.train.seed))
    return step_checkpoint_path(trainer.out_dir / "checkpoints", trainer.step)  # fit() saved it


TRAINERS: dict[str, Callable[[Any], Path]] = {"single": train_single_process}


def run_setting(
    setting: str,
    seed: int,
    base_config: str,
    data: str,
    out_root: str,
    steps: int,
    extra_overrides: Sequence[str] = (),
    trainer: str = "single",
    eval_options: dict[str, Any] | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Trains one (setting, seed) and evaluates it on the test split; returns a JSON-able record."""
    import torch

    from crossnet_dist.config import load_config
    from crossnet_dist.evaluation.report import evaluate

    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)  # this call's own; the caller's count is restored below
    run_dir = Path(out_root) / slug(setting) / f"seed{seed}"
    cfg = load_config(base_config, [
        *SETTINGS[setting], *extra_overrides, f"data.root={data}", f"train.seed={seed}",
        f"train.max_steps={steps}", f"train.out_dir={run_dir}", "train.progress=false",
    ])
    t0 = time.perf_counter()
    try:
        checkpoint = TRAINERS[trainer](cfg)
        train_s = time.perf_counter() - t0
        metrics = evaluate(checkpoint, data, split="test", out_dir=run_dir / "eval_test", **(eval_options or {}))
    finally:
        torch.set_num_threads(threads_before)
    return {
        "setting": setting, "seed": seed, "steps": steps, "train_s": round(train_s, 1),
        "eval_s": round(time.perf_counter() - t0 - train_s, 1), "checkpoint": str(checkpoint), "metrics": metrics,
    }


def summarise(records: list[dict[str, Any]], settings: Sequence[str]) -> list[dict[str, Any]]:
    """One row per setting: mean and sample standard deviation over seeds of every metric."""
    rows = []
    for setting in settings:
        runs = [r for r in records if r["setting"] == setting]
        if not runs:
            continue
        row: dict[str, Any] = {"setting": setting, "seeds": sorted(r["seed"] for r in runs), "steps": runs[0]["steps"],
                               "train_s": round(mean(r["train_s"] for r in runs), 1)}
        for key in sorted({k for r in runs for k in r["metrics"]}):
            values = [r["metrics"][key] for r in runs if key in r["metrics"]]
            row[f"{key}_mean"] = mean(values)
            row[f"{key}_std"] = stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def _cell(row: dict[str, Any], key: str) -> str:
    m, s = row.get(f"{key}_mean"), row.get(f"{key}_std")
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "n/a"
    return f"{m:.4g} ± {s:.2g}"


def write_tables(
    records: list[dict[str, Any]], settings: Sequence[str], out_dir: str | Path, header: str = ""
) -> dict[str, Path]:
    from crossnet_dist.evaluation.plots import bar_chart

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = summarise(records, settings)
    columns = [k for k in TABLE_METRICS if any(f"{k}_mean" in r for r in rows)]
    lines = [header, ""] if header else []
    lines.append("| setting | seeds | steps | " + " | ".join(columns) + " | train s |")
    lines.append("|---" * (len(columns) + 4) + "|")
    for r in rows:
        seeds = ",".join(map(str, r["seeds"]))
        lines.append(
            f"| {r['setting']} | {seeds} | {r['steps']} | " + " | ".join(_cell(r, c) for c in columns) + f" | {r['train_s']} |"
        )
    lines += ["", "mean ± sample standard deviation over seeds; lower is better for every metric but paired_ssim. "
              "paired_*: against the true counterpart (the same file name in the other domain's test folder), "
              "L1 in the [-1, 1] range; fd/kd_efflite0: Frechet/kernel distance on EfficientNet-Lite0 features (not FID)."]
    base = rows[0] if rows else {}
    untranslated = [f"{k} {base[f'{k}_identity_baseline_mean']:.4g}" for k in columns
                    if f"{k}_identity_baseline_mean" in base]
    if untranslated:
        lines.append("Doing nothing (the untranslated input scored the same way): " + ", ".join(untranslated)
                     + ". A useful translator is below that on L1 and fd, above it on SSIM.")
    paper = [r["setting"] for r in rows if r["setting"] in PAPER_FIG5_FID["a2b"]]
    if paper:
        lines += ["", "The paper's Fig. 5 (horse2zebra, FID; GAN+Id not reported):", "",
                  "| setting | Horse -> Zebra (a2b) | Zebra -> Horse (b2a) |", "|---|---|---|"]
        lines += [f"| {s} | {PAPER_FIG5_FID['a2b'][s]} | {PAPER_FIG5_FID['b2a'][s]} |" for s in paper]
    paths = {"markdown": out_dir / "ablation.md", "csv": out_dir / "ablation.csv", "runs_csv": out_dir / "runs.csv",
             "json": out_dir / "runs.json", "chart": out_dir / "ablation.png"}
    paths["markdown"].write_text("\n".join(lines) + "\n")
    _write_csv(paths["csv"], rows)
    _write_csv(paths["runs_csv"], [{k: v for k, v in r.items() if k != "metrics"} | r["metrics"] for r in records])
    paths["json"].write_text(json.dumps(records, indent=2) + "\n")
    chart_metric = next((m for m in ("paired_l1", "fid", "fd_efflite0") if any(f"{m}_a2b_mean" in r for r in rows)),
                        "fd_efflite0")
    groups = {
        direction: ([r.get(f"{chart_metric}_{direction}_mean", float("nan")) for r in rows],
                    [r.get(f"{chart_metric}_{direction}_std", 0.0) for r in rows])
        for direction in ("a2b", "b2a")
    }
    baselines = {d: rows[0][f"{chart_metric}_{d}_identity_baseline_mean"] for d in groups
                 if rows and f"{chart_metric}_{d}_identity_baseline_mean" in rows[0]}
    bar_chart([r["setting"] for r in rows], groups, paths["chart"],
              title=f"Ablation (Fig. 5 settings): {chart_metric} on the test split\nmean ± std over seeds",
              ylabel=chart_metric + " (lower is better)", baselines=baselines, zoom=True)
    return paths


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (";".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})
