"""The evaluation report: metrics.json, sample images, loss curves and index.html.

The page is laid out like the CycleGAN results page: one table per direction, one row per test
image, columns input | translation | truth (the true counterpart, on paired splits) | reconstruction
(| latent cross-identity for CrossNet). A paired split gets a summary table: each paired metric
beside doing nothing (the input as its own prediction). `evaluate` is scoring plus, with `out_dir`, this report.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image

from crossnet_dist.evaluation.plots import plot_loss_curves
from crossnet_dist.evaluation.scoring import EvalResult, Translations, as_eval_config, run_evaluation

COLUMNS = (
    ("input", "inputs"), ("translation", "outputs"), ("truth", "targets"), ("reconstruction", "reconstructions"),
    ("cross-identity", "cross_identity"),
)
TITLES = {"a2b": "A &rarr; B", "b2a": "B &rarr; A"}


def run_folder(checkpoint: Path) -> Path:
    """The training run folder of a checkpoint (run/generator.pt or run/checkpoints/step_*.pt)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def save_pixels(pixels, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.permute(1, 2, 0).numpy(), "RGB").save(path)
    return path.as_posix()


def write_samples(translations: dict[str, Translations], out_dir: Path, count: int) -> dict[str, list[dict[str, str]]]:
    """PNG files per sample; returns, per direction, rows of {column: path relative to out_dir}."""
    rows: dict[str, list[dict[str, str]]] = {}
    for direction, t in translations.items():
        rows[direction] = []
        # a paired split shows its pairs (input | translation | truth | ...); others the first inputs
        indices = sorted(t.truth_of)[:count] if t.truth_of else range(min(count, len(t.inputs)))
        for i in indices:
            stem = Path(t.names[i]).stem if i < len(t.names) else f"{i:04d}"
            row = {}
            for column, attr in COLUMNS:
                if column == "truth":
                    image = t.targets[t.truth_of[i]] if t.truth_of else None
                else:
                    images = getattr(t, attr)
                    image = None if images is None else images[i]
                if image is None:
                    continue
                rel = Path("images") / direction / f"{i:03d}_{stem}_{column}.png"
                save_pixels(image, out_dir / rel)
                row[column] = rel.as_posix()
            rows[direction].append(row)
    return rows


def write_report(result: EvalResult, out_dir: str | Path) -> Path:
    """Writes the report; returns the path of index.html."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = write_samples(result.translations, out_dir, result.info["samples"])
    metrics_jsonl = run_folder(result.checkpoint) / "metrics.jsonl"
    curves = plot_loss_curves(metrics_jsonl, out_dir / "loss_curves.png") if metrics_jsonl.is_file() else None
    info = dict(result.info, loss_curves="loss_curves.png" if curves else None)
    if curves is None:
        info["loss_curves_skipped"] = f"no metrics.jsonl in {run_folder(result.checkpoint)}"
    (out_dir / "metrics.json").write_text(json.dumps({"metrics": result.metrics, **info}, indent=2, sort_keys=True) + "\n")
    page = out_dir / "index.html"
    page.write_text(render_html(result, info, samples))
    return page


def render_html(result: EvalResult, info: dict, samples: dict[str, list[dict[str, str]]]) -> str:
    parts = [
        "<!DOCTYPE html>",
        "<html><head><meta charset='utf-8'><title>crossnet eval</title>",
        "<style>body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse} "
        "td,th{padding:4px 8px;border:1px solid #ccc;text-align:left} img{width:128px;image-rendering:pixelated}"
        ".num{text-align:right;font-family:monospace}</style></head><body>",
        f"<h1>Evaluation of {escape(info['checkpoint'])}</h1>",
        f"<p>method <b>{escape(info['method'])}</b>, data {escape(info['data'])}, split <b>{escape(info['split'])}</b>, "
        f"{info['images']['a']} A / {info['images']['b']} B images at {info['image_size']}px. "
        "Lower is better for every number but SSIM. fd/kd_efflite0 are Frechet/kernel distances on EfficientNet-Lite0 "
        "features: not comparable with FID/KID. L1 is in the networks' [-1, 1] range.</p>",
        "<h2>Metrics</h2><table><tr><th>metric</th><th>value</th></tr>",
    ]
    for key in sorted(result.metrics):
        parts.append(f"<tr><td>{escape(key)}</td><td class='num'>{result.metrics[key]:.5g}</td></tr>")
    parts.append("</table>")
    paired = [d for d in ("a2b", "b2a") if f"paired_l1_{d}" in result.metrics]
    if paired:
        m = result.metrics
        parts.append("<h2>Against the true counterpart</h2><p>Each translation compared with the true image of the "
                     "same name in the other domain; do-nothing is the untranslated input. L1: lower is better; "
                     "SSIM: higher is better.</p><table><tr><th>direction</th><th>pairs</th><th>L1</th>"
                     "<th>L1 do-nothing</th><th>ratio</th><th>SSIM</th><th>SSIM do-nothing</th><th>ratio</th></tr>")
        for d in paired:
            cells = [m[f"paired_{n}_{d}{s}"] for n in ("l1", "ssim") for s in ("", "_identity_baseline", "_ratio")]
            parts.append(f"<tr><td>{TITLES[d]}</td><td class='num'>{info['pairs'][d]}</td>"
                         + "".join(f"<td class='num'>{v:.4f}</td>" for v in cells) + "</tr>")
        parts.append("</table>")
    if info["skipped_metrics"]:
        parts.append("<h3>Not computed</h3><ul>")
        parts += [f"<li>{escape(k)}: {escape(v)}</li>" for k, v in sorted(info["skipped_metrics"].items())]
        parts.append("</ul>")
    if info.get("loss_curves"):
        parts.append(f"<h2>Training losses</h2><img style='width:auto' src='{escape(info['loss_curves'])}' alt='loss curves'>")
    for direction, rows in samples.items():
        columns = [c for c, _ in COLUMNS if rows and c in rows[0]]
        parts.append(f"<h2>{TITLES[direction]}</h2><table><tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td><img src='{escape(row[c])}' alt='{c}'></td>" for c in columns) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def evaluate(
    checkpoint_path,
    data: str | Any | None = None,
    split: str = "test",
    metric: str | None = None,
    out_dir: str | Path | None = None,
    eval_cfg=None,
    **overrides,
) -> dict[str, float]:
    """Scores a checkpoint; returns {metric name: value} (lower is better for every metric but
    paired_ssim* and the paired_ssim ratios).

    `data` is a URL/path with testA/ testB/, or a DataConfig (its root and storage are used);
    None = the checkpoint's own data.root. `metric` (e.g. "fd_efflite0") computes only what that
    metric needs, for a Tune objective. With `out_dir`, the report (metrics.json, index.html,
    sample images, loss curves) is written there. `overrides` set EvalConfig fields
    (cache_dir=..., device=..., max_images=..., inception_weights=...).
    """
    storage_cfg = None
    if data is not None and not isinstance(data, (str, Path)):
        storage_cfg, data = getattr(data, "storage", None), data.root
    result = run_evaluation(checkpoint_path, data, split, as_eval_config(eval_cfg, **overrides), storage_cfg, metric)
    if out_dir is not None:
        write_report(result, out_dir)
    return result.metrics
