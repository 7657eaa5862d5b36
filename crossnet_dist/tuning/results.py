"""A campaign's results: one row per trial, the tables and the plot, and the best/ pointer."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from crossnet_dist.config import to_container
from crossnet_dist.storage.runs import RunStorage, join_path, path_exists, read_text, upload_file, write_bytes
from crossnet_dist.tuning.trial import RUNS_DIR


@dataclass
class TrialRow:
    trial_id: str
    status: str  # completed | stopped | paused | errored | not run | no report
    params: dict[str, Any]
    value: float | None  # the metric of the trial's last scored checkpoint
    step: int  # last step reported
    seconds: float | None
    error: str = ""
    generator: str | None = None
    run: str | None = None  # the Train run (under runs/) that exported the trial's generator.pt
    lineage: list = field(default_factory=list)  # PBT: the donors this trial continued from


@dataclass
class CampaignResult:
    name: str
    url: str  # <storage>/<campaign>
    metric: str
    mode: str
    rows: list[TrialRow]
    best: TrialRow | None
    best_url: str | None  # <campaign>/best/
    files: dict[str, str] = field(default_factory=dict)  # table / plot URLs

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)


def _status(trial, fs: pafs.FileSystem, run_dir: str) -> tuple[str, str]:
    from ray.tune.experiment import Trial

    if trial.status == Trial.ERROR:
        err = trial.get_error()
        text = str(err).strip().splitlines() if err is not None else []
        # the cause is the last line of a Ray error ("...Error: message")
        return "errored", next((line.strip() for line in reversed(text) if "Error" in line), text[-1] if text else "error")
    if trial.status == Trial.PENDING or (trial.status == Trial.PAUSED and not trial.last_result):
        return "not run", ""
    if trial.status == Trial.PAUSED:  # PBT paused it for another trial and the campaign ended first
        return "paused", ""
    if not trial.last_result or "progress/step" not in trial.last_result:
        return "no report", "the trial never reported: check that its workers could start (resources)"
    if path_exists(fs, join_path(run_dir, "trial.json")):
        return "completed", ""
    return "stopped", ""


def trial_analysis(results):
    """Every trial of the campaign with its status (PENDING, PAUSED, ERROR, ...) and its results, read
    back from the experiment state Tune stored: the public ResultGrid gives only trials that produced a
    result, and not their status."""
    from ray.tune import ExperimentAnalysis

    return ExperimentAnalysis(results.experiment_path, storage_filesystem=results.filesystem)


def collect_rows(results, cfg, storage: RunStorage, name: str, specs) -> list[TrialRow]:
    fs = storage.filesystem
    metric = f"eval/{cfg.tune.metric}"
    rows = []
    analysis = trial_analysis(results)
    for trial in analysis.trials:  # in the order the trials were created
        run_dir = join_path(storage.fs_path, name, RUNS_DIR, trial.trial_id)
        status, error = _status(trial, fs, run_dir)
        df = analysis.trial_dataframes.get(trial.trial_id)
        value = None
        if df is not None and metric in df.columns and df[metric].notna().any():
            value = float(df[metric].dropna().iloc[-1])
        last = trial.last_result or {}
        summary = json.loads(read_text(fs, join_path(run_dir, "trial.json")) or "{}")
        seconds = summary.get("seconds", last.get("time_total_s"))
        rows.append(TrialRow(
            trial_id=trial.trial_id, status=status, params={k: trial.config.get(k) for k in specs},
            value=value, step=int(last.get("progress/step", 0)), seconds=float(seconds) if seconds is not None else None,
            error=error, generator=summary.get("generator") if status == "completed" else None,
            run=summary.get("run", trial.trial_id), lineage=summary.get("lineage", []),
        ))
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table_csv(rows: list[TrialRow], specs, metric: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trial_id", "status", *specs, metric, "steps", "seconds", "error"])
    for r in rows:
        writer.writerow([r.trial_id, r.status, *(r.params.get(k) for k in specs), r.value, r.step,
                         None if r.seconds is None else round(r.seconds, 1), r.error])
    return out.getvalue()


def table_markdown(rows: list[TrialRow], specs, metric: str, best: TrialRow | None) -> str:
    head = ["trial", "status", *specs, metric, "steps", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        mark = " (best)" if best is not None and r.trial_id == best.trial_id else ""
        status = r.status + (f": {r.error}" if r.error else "")
        if r.lineage:  # PBT: the trials (and steps) this one continued from
            status += " (from " + ", ".join(f"{x['from_trial']}@{x['step']}" for x in r.lineage) + ")"
        cells = [r.trial_id + mark, status.replace("|", "/"), *(_fmt(r.params.get(k)) for k in specs), _fmt(r.value),
                 str(r.step), _fmt(r.seconds)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_png(rows: list[TrialRow], specs, metric: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = [k for k in specs if all(isinstance(r.params.get(k), (int, float, type(None))) for r in rows)]
    keys = numeric or list(specs)[:1]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.0), squeeze=False)
    styles = {"completed": dict(marker="o", color="tab:blue"), "stopped": dict(marker="x", color="tab:orange")}
    for ax, key in zip(axes[0], keys):
        for status, style in styles.items():
            pts = [(r.params.get(key), r.value) for r in rows if r.status == status and r.value is not None
                   and isinstance(r.params.get(key), (int, float)) and math.isfinite(r.value)]
            if pts:
                ax.scatter(*zip(*pts), label=status, **style)
        ax.set_xlabel(key.split(".")[-1] if key.startswith("loss.") else key)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][-1].legend(handles, labels, fontsize=8)
    fig.suptitle(f"{metric} of each trial's last scored checkpoint (stopped: at its last rung)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def pick_best(rows: list[TrialRow], mode: str) -> TrialRow | None:
    done = [r for r in rows if r.status == "completed" and r.value is not None and math.isfinite(r.value)]
    if not done:
        return None
    return (min if mode == "min" else max)(done, key=lambda r: r.value)


def summarize(results, cfg, storage: RunStorage, name: str, specs) -> CampaignResult:
    fs = storage.filesystem
    t = cfg.tune
    rows = collect_rows(results, cfg, storage, name, specs)
    best = pick_best(rows, t.mode)
    root = join_path(storage.fs_path, name)
    files = {
        "csv": "trials.csv", "markdown": "trials.md", "plot": "metric_vs_params.png",
    }
    write_bytes(fs, join_path(root, files["csv"]), table_csv(rows, specs, t.metric).encode())
    write_bytes(fs, join_path(root, files["markdown"]), table_markdown(rows, specs, t.metric, best).encode())
    write_bytes(fs, join_path(root, files["plot"]), plot_png(rows, specs, t.metric))
    best_url = None
    if best is not None:
        src = join_path(root, RUNS_DIR, best.run or best.trial_id, "generator.pt")
        best_dir = join_path(root, "best")
        fs.create_dir(best_dir, recursive=True)
        with tempfile.TemporaryDirectory(prefix="crossnet-tune-best-") as tmp:
            local = Path(tmp) / "generator.pt"
            pafs.copy_files(src, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
            upload_file(local, fs, join_path(best_dir, "generator.pt"))
        from crossnet_dist.config import config_with

        pointer = {
            "campaign": name, "trial_id": best.trial_id, "metric": t.metric, "mode": t.mode, "value": best.value,
            "split": t.split, "step": best.step, "params": best.params,
            "source": storage.run_url(name, RUNS_DIR, best.run or best.trial_id, "generator.pt"),
            "lineage": best.lineage,
            "config": to_container(config_with(to_container(cfg), best.params)),
        }
        write_bytes(fs, join_path(best_dir, "best.json"), json.dumps(pointer, indent=2, sort_keys=True).encode())
        best_url = storage.run_url(name, "best") + "/"
    return CampaignResult(name=name, url=storage.run_url(name), metric=t.metric, mode=t.mode, rows=rows, best=best,
                          best_url=best_url, files={k: storage.run_url(name, v) for k, v in files.items()})
