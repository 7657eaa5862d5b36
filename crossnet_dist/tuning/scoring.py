"""Scores a distributed training checkpoint on the held-out split, in the trial driver.

A Ray Train checkpoint of crossnet_dist.distributed (`<run>/step_XXXXXXXX/`) holds DeepSpeed state;
the generators' full fp32 weights come from it (ZeRO 1-3: DeepSpeed's zero_to_fp32 consolidation of
the shards; ZeRO 0: the model-states file), become a serving checkpoint (the same format as the
run's generator.pt) in a temporary folder, and go through the evaluation package's `evaluate`.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import torch

DS_TAG = "state"  # crossnet_dist.distributed.worker.DS_TAG
POSITION_RANK0 = "position_rank_00000.pt"  # crossnet_dist.distributed.worker.position_file(0)


def generator_state_from_checkpoint(folder: Path) -> dict[str, torch.Tensor]:
    """The `method.generators` state dict stored in `<checkpoint>/generators/` (local folder)."""
    engine_dir = folder / "generators"
    tagged = engine_dir / DS_TAG
    if not tagged.is_dir():
        raise FileNotFoundError(f"checkpoint {folder} has no DeepSpeed generators state ({tagged})")
    if any(tagged.glob("*optim_states.pt")) and any(tagged.glob("zero_pp_rank_*")):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state = get_fp32_state_dict_from_zero_checkpoint(str(engine_dir), tag=DS_TAG)
    else:  # ZeRO 0: the whole module is in the model-states file
        files = sorted(tagged.glob("mp_rank_*_model_states.pt"))
        if not files:
            raise FileNotFoundError(f"checkpoint {folder} has no model states in {tagged}")
        state = torch.load(files[0], map_location="cpu", weights_only=True)["module"]
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def serving_checkpoint(train_checkpoint: str, filesystem: pafs.FileSystem, cfg, step: int, out: Path) -> Path:
    """Writes `out` (a serving checkpoint) from the Train checkpoint at `train_checkpoint` (a path in
    `filesystem`: local or S3); only its generators/ folder is fetched."""
    from crossnet_dist.config import to_container
    from crossnet_dist.methods import build_method
    from crossnet_dist.training.checkpoint import atomic_save
    from crossnet_dist.translator_checkpoint import serving_payload

    with tempfile.TemporaryDirectory(prefix="crossnet-tune-ckpt-") as tmp:
        local = Path(tmp)
        pafs.copy_files(f"{train_checkpoint.rstrip('/')}/generators", str(local / "generators"),
                        source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem())
        state = generator_state_from_checkpoint(local)
        ema_state = None
        if cfg.train.ema_decay:  # the averaged weights live in rank 0's position file (identical on every rank)
            position = f"{train_checkpoint.rstrip('/')}/{POSITION_RANK0}"
            pafs.copy_files(position, str(local / POSITION_RANK0), source_filesystem=filesystem,
                            destination_filesystem=pafs.LocalFileSystem())
            ema_state = torch.load(local / POSITION_RANK0, map_location="cpu", weights_only=True).get("ema")
    method = build_method(cfg)
    missing, unexpected = method.generators.load_state_dict(state, strict=False)
    needed = [k for k in missing if k.split(".", 1)[0] in method.translation_modules]
    if needed or unexpected:
        raise RuntimeError(f"checkpoint {train_checkpoint} does not match the trial's config: "
                           f"missing {needed[:3]}, unexpected {unexpected[:3]}")
    ema = None
    if ema_state is not None:
        from crossnet_dist.training.ema import TranslatorEMA

        ema = TranslatorEMA(method, cfg.train.ema_decay)
        ema.load_state_dict(ema_state)
    return atomic_save(serving_payload(method, to_container(cfg), step, ema), out)


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
