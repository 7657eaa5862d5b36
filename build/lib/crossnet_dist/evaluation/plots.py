"""Matplotlib figures (PNG, no display needed): training loss curves and bar charts with error bars."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics_jsonl(path: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """metrics.jsonl of a run -> {"loss/<term>": (steps, values)}; unreadable lines are skipped."""
    series: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash mid-write
        step = record.get("step")
        for key, value in record.items():
            if key.startswith("loss/") and isinstance(value, (int, float)) and step is not None:
                series[key][0].append(step)
                series[key][1].append(value)
    return dict(series)


def plot_loss_curves(metrics_jsonl: str | Path, out_png: str | Path) -> Path | None:
    """Totals, generator terms and discriminator terms in side-by-side panels; None if the file has no losses."""
    series = read_metrics_jsonl(metrics_jsonl)
    if not series:
        return None
    total = {k: v for k, v in series.items() if k.endswith("_total")}
    panels = {
        "total": total,
        "generator terms": {k: v for k, v in series.items() if k not in total and not k.startswith("loss/D")},
        "discriminator terms": {k: v for k, v in series.items() if k not in total and k.startswith("loss/D")},
    }
    panels = {name: curves for name, curves in panels.items() if curves}
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (name, curves) in zip(axes[0], panels.items()):
        for key, (steps, values) in sorted(curves.items()):
            ax.plot(steps, values, label=key.removeprefix("loss/"), linewidth=1.2)
        ax.set_title(f"{name} (loss)")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out_png)


def bar_chart(
    labels: Sequence[str],
    groups: dict[str, tuple[Sequence[float], Sequence[float]]],
    out_png: str | Path,
    title: str,
    ylabel: str,
    baselines: dict[str, float] | None = None,
    zoom: bool = False,
) -> Path:
    """Grouped bars: `groups[name] = (means, stds)`, one value per label, stds drawn as error bars;
    `baselines[name]`, if given, is a dashed line in that group's colour. `zoom` starts the y axis near
    the smallest value instead of 0 (the title says so), for settings that differ by a few percent."""
    n = len(groups)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(labels) * max(n, 1) / 1.5), 4.8))
    for i, (name, (means, stds)) in enumerate(groups.items()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(labels))]
        bars = ax.bar(xs, means, width, yerr=stds, capsize=4, label=name)
        if baselines and name in baselines:
            ax.axhline(baselines[name], color=bars.patches[0].get_facecolor(), linestyle="--", linewidth=1,
                       label=f"{name}: untranslated inputs")
    if zoom:
        values = [m - s for means, stds in groups.values() for m, s in zip(means, stds) if m == m]
        values += [m + s for means, stds in groups.values() for m, s in zip(means, stds) if m == m]
        values += list((baselines or {}).values())
        if values:
            low, high = min(values), max(values)
            pad = 0.15 * (high - low or abs(high) or 1.0)
            ax.set_ylim(low - pad, high + pad)
            title += " (y axis not from 0)"
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if n > 1 or baselines:
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out_png)


def _save(fig, out_png: str | Path) -> Path:
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
