"""Scores a distributed training checkpoint on the held-out split, in the trial driver.

A Ray Train checkpoint of crossnet_dist.distributed (`<run>/step_XXXXXXXX/`) becomes a serving
checkpoint in a temporary folder (distributed/checkpoint.py consolidates the DeepSpeed shards) and
goes through the evaluation package's `evaluate`.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from crossnet_dist.distributed.checkpoint import serving_checkpoint


def score_checkpoint(train_checkpoint: str, filesystem: pafs.FileSystem, cfg, step: int) -> dict[str, float]:
    """{"eval/<name>": value} for every metric the configured one comes with (tune.metric's group)
    on the held-out split `tune.split` of data.root. Non-finite values (a diverged run) are kept in
    "eval/<metric>_raw" and replaced by the worst value, so schedulers rank such a trial last."""
    from crossnet_dist.evaluation import evaluate

    t = cfg.tune
    with tempfile.TemporaryDirectory(prefix="crossnet-tune-eval-") as tmp:
        path = serving_checkpoint(train_checkpoint, filesystem, cfg, step, Path(tmp) / "generator.pt")
        metrics = evaluate(path, data=cfg.data, split=t.split, metric=t.metric, device=t.eval_device,
                           max_images=t.eval_max_images)
    if t.metric not in metrics:
        raise KeyError(f"config key 'tune.metric': evaluation gave no {t.metric!r} (it gave {sorted(metrics)})")
    out: dict[str, Any] = {f"eval/{k}": float(v) for k, v in metrics.items()}
    value = out[f"eval/{t.metric}"]
    if not math.isfinite(value):
        out[f"eval/{t.metric}_raw"] = value
        out[f"eval/{t.metric}"] = math.inf if t.mode == "min" else -math.inf
    out["eval/step"] = float(step)
    return out
