"""Outputs of bench/quality.py: the tables (quality.md: the val curves, and the test split between
floor and ceiling), the rows (quality.json), the summary of CrossNet against CycleGAN at equal steps
and at equal CPU time (on val, where the curves are), and the quality-vs-time plot."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

HEADER = ("method", "trainer", "seed", "weights", "split", "step", "CPU-s", "L1/none a2b", "L1/none b2a", "SSIM a2b",
          "SSIM b2a", "SSIM/none a2b", "SSIM/none b2a", "fd/identity a2b", "fd/identity b2a")
KEYS = ("paired_l1_a2b_ratio", "paired_l1_b2a_ratio", "paired_ssim_a2b", "paired_ssim_b2a",
        "paired_ssim_a2b_ratio", "paired_ssim_b2a_ratio", "fd_a2b_ratio", "fd_b2a_ratio")


def beats_nothing(r: dict) -> bool:
    """Both directions: paired L1 below doing nothing and SSIM above it."""
    return all(r[f"paired_l1_{d}_ratio"] < 1 and r[f"paired_ssim_{d}_ratio"] > 1 for d in ("a2b", "b2a"))


def quality(r: dict) -> float:
    """One number to compare runs: the mean paired L1 ratio over both directions (lower is better)."""
    return (r["paired_l1_a2b_ratio"] + r["paired_l1_b2a_ratio"]) / 2


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = [r["method"], r["trainer"], str(r["seed"]), r["weights"], r.get("split", "val"), str(r["step"]),
                 f"{r['cpu_s']:.0f}"]
        cells += [f"{r[k]:.3f}" for k in KEYS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def floor_row(reported: list[dict]) -> dict:
    """Doing nothing: the input as its own prediction, 1.0 on every ratio by definition."""
    ssim = {f"paired_ssim_{d}": reported[0][f"baseline_ssim_{d}"] if reported else float("nan") for d in ("a2b", "b2a")}
    return {"method": "doing nothing", "trainer": "-", "seed": "-", "weights": "-", "split": "test", "step": 0,
            "cpu_s": 0.0, **{k: 1.0 for k in KEYS if "ratio" in k}, **ssim}


def position(r: dict, ceiling: dict | None) -> str:
    """Where a result sits between the floor (0%) and the ceiling (100%), by mean paired L1 ratio."""
    if ceiling is None or quality(ceiling) >= 1:
        return ""
    return f", {100 * (1 - quality(r)) / (1 - quality(ceiling)):.0f}% of the way from doing nothing to the ceiling"


def reported_summary(reported: list[dict]) -> list[str]:
    ceilings = [r for r in reported if r["method"] == "ceiling"]
    ceiling = ceilings[0] if ceilings else None
    lines = []
    for r in reported:
        verdict = "beats doing nothing in both directions" if beats_nothing(r) else "does not beat doing nothing in both"
        lines.append(f"- {r['method']}/{r['trainer']}/s{r['seed']} (step {r['step']}, chosen on val): test mean L1 ratio "
                     f"{quality(r):.3f}, {verdict}" + (position(r, ceiling) if r is not ceiling else ""))
    return lines


def summary(rows: list[dict]) -> list[str]:
    """Per run: when (step, CPU-s) it first beats doing nothing; CrossNet vs CycleGAN at equal
    steps (same step, same seed) and at equal time (the checkpoint of each nearest below a CPU-time)."""
    lines = []
    runs: dict[tuple, list[dict]] = {}
    for r in rows:
        runs.setdefault((r["method"], r["trainer"], r["seed"], r["weights"]), []).append(r)
    for key, rs in runs.items():
        first = next((r for r in rs if beats_nothing(r)), None)
        best = min(rs, key=quality)
        when = (
            f"first beats doing nothing at step {first['step']} ({first['cpu_s']:.0f} CPU-s)"
            if first
            else "never beats doing nothing in both directions"
        )
        lines.append(f"- {'/'.join(map(str, key))}: {when}; best mean L1 ratio {quality(best):.3f} at step {best['step']}")
    for seed in sorted({r["seed"] for r in rows}):
        cn = {r["step"]: r for r in runs.get(("crossnet", "ray", seed, _weights(rows, "crossnet")), [])}
        cg = {r["step"]: r for r in runs.get(("cyclegan", "ray", seed, _weights(rows, "cyclegan")), [])}
        common = sorted(set(cn) & set(cg))
        if not common:
            continue
        s = common[-1]
        lines.append(
            f"- seed {seed}, equal steps ({s}): mean L1 ratio CrossNet {quality(cn[s]):.3f} vs CycleGAN {quality(cg[s]):.3f}; "
            f"SSIM a2b {cn[s]['paired_ssim_a2b']:.3f} vs {cg[s]['paired_ssim_a2b']:.3f}, "
            f"b2a {cn[s]['paired_ssim_b2a']:.3f} vs {cg[s]['paired_ssim_b2a']:.3f}"
        )
        budget = min(max(r["cpu_s"] for r in cn.values()), max(r["cpu_s"] for r in cg.values()))
        a = max((r for r in cn.values() if r["cpu_s"] <= budget), key=lambda r: r["cpu_s"])
        b = max((r for r in cg.values() if r["cpu_s"] <= budget), key=lambda r: r["cpu_s"])
        lines.append(f"- seed {seed}, equal time (<= {budget:.0f} CPU-s): CrossNet step {a['step']} mean L1 ratio "
                     f"{quality(a):.3f} vs CycleGAN step {b['step']} {quality(b):.3f}")
    return lines


def _weights(rows: list[dict], method: str) -> str:
    kinds = {r["weights"] for r in rows if r["method"] == method}
    return "ema" if "ema" in kinds else "raw"


def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    runs: dict[str, list[dict]] = {}
    for r in rows:
        runs.setdefault(f"{r['method']} {r['trainer']} s{r['seed']} {r['weights']}", []).append(r)
    for label, rs in runs.items():
        t = [r["cpu_s"] for r in rs]
        axes[0].plot(t, [quality(r) for r in rs], marker="o", label=label, linestyle=":" if "ceiling" in label else "-")
        axes[1].plot(t, [(r["paired_ssim_a2b_ratio"] + r["paired_ssim_b2a_ratio"]) / 2 for r in rs], marker="o", label=label)
    for ax, title in zip(axes, ("paired L1 / doing nothing (lower is better)", "paired SSIM / doing nothing (higher is better)")):
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("training CPU-seconds")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("validation split (selection), mean of a2b and b2a; dashed: doing nothing; dotted: paired ceiling")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_outputs(rows: list[dict], reported: list[dict], out: Path, args, total_s: float) -> None:
    curves, notes = markdown_table(rows), summary(rows)
    result = markdown_table([floor_row(reported), *reported])
    picture = plot(rows, out / "quality_vs_time.png")
    command = "python bench/quality.py " + " ".join(a for a in __import__("sys").argv[1:])
    text = (f"# bench/quality.py, {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
            f"{total_s / 60:.1f} min\n\n`{command.strip()}`\n\n## Test split (each run's checkpoint chosen on val)\n\n"
            f"{result}\n\n" + "\n".join(reported_summary(reported)) + f"\n\n## Validation curves\n\n{curves}\n\n"
            + "\n".join(notes) + f"\n\nplot: {picture}\n")
    (out / "quality.md").write_text(text)
    (out / "quality.json").write_text(json.dumps({"rows": rows, "reported": reported, "args": vars(args),
                                                  "total_s": total_s}, indent=1) + "\n")
    print("\n" + result + "\n\n" + "\n".join(reported_summary(reported)) + "\n\n" + curves + "\n\n" + "\n".join(notes))
    print(f"\ntotal {total_s / 60:.1f} min; table {out / 'quality.md'}; plot {picture}")
