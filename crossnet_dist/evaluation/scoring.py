"""Scores a checkpoint on a held-out split: translate both directions, then distances and reconstructions.

For direction a2b, the translations of testA are compared with the real testB images (and b2a
symmetrically), as the CrossNet paper computes FID. `*_identity_baseline` scores the untranslated
inputs the same way: a translator should beat it. Where the split has true pairs (the same file
name in testA/ and testB/), `paired_*` compare each translation with its true counterpart
(evaluation/paired.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from crossnet_dist.devices import resolve_device
from crossnet_dist.evaluation.cache import FeatureCache
from crossnet_dist.evaluation.config import EvalConfig, groups_for_metric, metric_groups
from crossnet_dist.evaluation.distances import frechet_distance, kernel_distance
from crossnet_dist.evaluation.features import EfficientNetLite0Features, InceptionV3Features
from crossnet_dist.evaluation.split_images import DomainImages, read_domain, to_uint8, to_unit_range

log = logging.getLogger(__name__)
DIRECTION_DOMAINS = {"a2b": ("a", "b"), "b2a": ("b", "a")}  # direction -> (source, target)


@dataclass
class Translations:
    """uint8 image sets per direction: the inputs and what the checkpoint made of them."""

    inputs: Tensor
    outputs: Tensor
    reconstructions: Tensor
    cross_identity: Tensor | None = None
    names: list[str] = field(default_factory=list)
    truth_of: dict[int, int] = field(default_factory=dict)  # input index -> index in `targets` of its true pair
    targets: Tensor | None = None  # the target domain's images (set with the paired metrics)


@dataclass
class EvalResult:
    metrics: dict[str, float]
    info: dict[str, Any]  # checkpoint, data, counts, skipped metrics with reasons, cache stats
    translations: dict[str, Translations]
    checkpoint: Path
    config: Any  # the checkpoint's training config


def as_eval_config(eval_cfg=None, **overrides):
    from omegaconf import OmegaConf

    from crossnet_dist.evaluation.config import validate_eval_config

    cfg = OmegaConf.structured(EvalConfig)
    if eval_cfg is not None:
        cfg = OmegaConf.merge(cfg, eval_cfg)
    if overrides:
        cfg = OmegaConf.merge(cfg, {k: v for k, v in overrides.items() if v is not None})
    validate_eval_config(cfg)
    return cfg


def load_cross_translators(checkpoint: Path, cfg, device) -> tuple[dict[str, torch.nn.Module] | None, str]:
    """T_ab and T_ba from a CrossNet training checkpoint, or (None, why not)."""
    from crossnet_dist.checkpoints.files import SERVING_FORMAT, TRAIN_FORMAT, load_checked

    if cfg.method != "crossnet":
        return None, f"method {cfg.method!r} has no latent cross-translators"
    payload = load_checked(checkpoint, (SERVING_FORMAT, TRAIN_FORMAT))
    if payload["format"] != TRAIN_FORMAT:
        return (
            None,
            "a serving checkpoint (generator.pt) holds no translators: pass a training checkpoint (checkpoints/step_*.pt)",
        )
    from crossnet_dist.networks import LatentTranslator

    translators = {}
    for name in ("T_ab", "T_ba"):
        prefix = name + "."
        state = {k[len(prefix):]: v for k, v in payload["generators"].items() if k.startswith(prefix)}
        if not state:
            return None, f"training checkpoint has no {name}"
        net = LatentTranslator(cfg.model)
        net.load_state_dict(state)
        translators[name] = net.to(device).eval()
    return translators, ""


@torch.inference_mode()
def translate_split(method, translators, images: dict[str, DomainImages], device, batch_size: int) -> dict[str, Translations]:
    g = method.generators
    out = {}
    for direction, (src, _) in DIRECTION_DOMAINS.items():
        back = "b2a" if direction == "a2b" else "a2b"
        outputs, recs, crosses = [], [], []
        pixels = images[src].pixels
        for i in range(0, len(pixels), batch_size):
            x = to_unit_range(pixels[i : i + batch_size]).to(device)
            y = method.translate(x, direction)
            outputs.append(to_uint8(y))
            recs.append(to_uint8(method.translate(y, back)))
            if translators is not None:  # eq. 1: D_a(T_ba(E_ab(x_a))) and D_b(T_ab(E_ba(x_b)))
                if direction == "a2b":
                    crosses.append(to_uint8(g["D_a"](translators["T_ba"](g["E_ab"](x)))))
                else:
                    crosses.append(to_uint8(g["D_b"](translators["T_ab"](g["E_ba"](x)))))
        out[direction] = Translations(
            inputs=pixels, outputs=torch.cat(outputs), reconstructions=torch.cat(recs),
            cross_identity=torch.cat(crosses) if crosses else None, names=images[src].names,
        )
    return out


def l1(a: Tensor, b: Tensor) -> float:
    """Mean absolute difference in the networks' [-1, 1] range (the training losses' units)."""
    return float((to_unit_range(a) - to_unit_range(b)).abs().mean())


def reconstruction_metrics(translations: dict[str, Translations]) -> dict[str, float]:
    m = {
        "cycle_l1_aba": l1(translations["a2b"].reconstructions, translations["a2b"].inputs),
        "cycle_l1_bab": l1(translations["b2a"].reconstructions, translations["b2a"].inputs),
    }
    m["cycle_l1"] = (m["cycle_l1_aba"] + m["cycle_l1_bab"]) / 2
    if translations["a2b"].cross_identity is not None:
        m["cross_identity_l1_a"] = l1(translations["a2b"].cross_identity, translations["a2b"].inputs)
        m["cross_identity_l1_b"] = l1(translations["b2a"].cross_identity, translations["b2a"].inputs)
        m["cross_identity_l1"] = (m["cross_identity_l1_a"] + m["cross_identity_l1_b"]) / 2
    return m


def distance_metrics(
    extractor, prefix_fd: str, prefix_kd: str, translations, images, cache: FeatureCache, cfg
) -> dict[str, float]:
    """Frechet and kernel distances of each direction's translations to the real target images."""
    m: dict[str, float] = {}
    real = {d: cache(extractor, images[d].pixels) for d in ("a", "b")}
    for direction, (src, dst) in DIRECTION_DOMAINS.items():
        fake = cache(extractor, translations[direction].outputs)
        m[f"{prefix_fd}_{direction}"] = frechet_distance(fake, real[dst])
        kd, kd_std = kernel_distance(fake, real[dst], cfg.kid_subset_size, cfg.kid_subsets)
        m[f"{prefix_kd}_{direction}"], m[f"{prefix_kd}_{direction}_std"] = kd, kd_std
        m[f"{prefix_fd}_{direction}_identity_baseline"] = frechet_distance(real[src], real[dst])
    for prefix in (prefix_fd, prefix_kd):
        m[prefix] = (m[f"{prefix}_a2b"] + m[f"{prefix}_b2a"]) / 2
    return m


def run_evaluation(
    checkpoint, data: str | None = None, split: str = "test", eval_cfg=None, storage_cfg=None, metric: str | None = None
) -> EvalResult:
    """Everything `evaluate` and the report need; `metric` narrows the work to what computes it."""
    from crossnet_dist.checkpoints.source import resolve_checkpoint
    from crossnet_dist.checkpoints.translator import load_translator

    t0 = time.perf_counter()
    cfg_e = as_eval_config(eval_cfg)
    groups = groups_for_metric(metric) if metric else metric_groups(cfg_e)
    device = resolve_device(cfg_e.device, key="eval.device")
    # Extractors first: a missing Inception file fails before any other work.
    extractors = []
    if "inception" in groups:
        extractors.append(("fid", "kid", InceptionV3Features(device, cfg_e.batch_size, cfg_e.inception_weights)))
    if "efflite0" in groups:
        extractors.append(("fd_efflite0", "kd_efflite0", EfficientNetLite0Features(device, cfg_e.batch_size)))
    source = resolve_checkpoint(str(checkpoint), storage_cfg)  # a local file, or a copy of an s3:// one
    checkpoint = source.local_path
    method, cfg = load_translator(checkpoint, device)
    data = data or cfg.data.root
    storage_cfg = storage_cfg if storage_cfg is not None else cfg.data.storage

    size = cfg.model.image_size
    images = {d: read_domain(data, split, d, size, storage_cfg, cfg_e.max_images) for d in ("a", "b")}
    log.info(
        "evaluating %s on %s (%s: %d A, %d B images)", checkpoint, data, split, len(images["a"].names), len(images["b"].names)
    )
    skipped: dict[str, str] = {}
    translators = None
    if "cycle" in groups:
        translators, why = load_cross_translators(checkpoint, cfg, device)
        if translators is None:
            skipped["cross_identity_l1"] = why
    source.discard_copy()
    translations = translate_split(method, translators, images, device, cfg_e.batch_size)

    metrics: dict[str, float] = {}
    if "cycle" in groups:
        metrics.update(reconstruction_metrics(translations))
    cache = FeatureCache(Path(cfg_e.cache_dir).expanduser() if cfg_e.cache_dir else None)
    for fd, kd, extractor in extractors:
        metrics.update(distance_metrics(extractor, fd, kd, translations, images, cache, cfg_e))
    if "paired" in groups and cfg_e.pairs != "none":
        from crossnet_dist.evaluation.paired import NoPairsError, paired_metrics

        paired, counts = paired_metrics(translations, images, DIRECTION_DOMAINS)
        metrics.update(paired)
        if not counts:
            why = "the split has no pairs (no file name is in both testA/ and testB/)"
            if cfg_e.pairs == "require":
                raise NoPairsError(f"eval.pairs=require: {data} split {split!r}: {why}")
            skipped["paired_l1"] = skipped["paired_ssim"] = why
    if "inception" not in groups:
        skipped["fid"] = skipped["kid"] = "no Inception-v3 weights given (--inception-weights or eval.inception_weights)"

    info = {
        "checkpoint": source.url,
        "method": cfg.method,
        "data": str(data),
        "split": split,
        "image_size": size,
        "images": {d: len(images[d].names) for d in ("a", "b")},
        "pairs": {k: len(t.truth_of) for k, t in translations.items() if t.truth_of},
        "skipped_images": {d: images[d].skipped for d in ("a", "b") if images[d].skipped},
        "skipped_metrics": skipped,
        "feature_cache": {"dir": str(cache.folder) if cache.folder else None, **cache.stats()},
        "extractors": {e.name: e.fingerprint() for _, _, e in extractors},
        "device": str(device),
        "samples": cfg_e.samples,
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }
    return EvalResult(metrics, info, translations, checkpoint, cfg)
