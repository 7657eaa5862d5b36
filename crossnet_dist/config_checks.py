"""Value checks of a loaded config (`validate`): ranges, choices, and the rules between keys. Every
error is a ConfigError naming the offending key. Kept apart from the schema (crossnet_dist/config.py)."""

from __future__ import annotations

import math
import re

from omegaconf import DictConfig, ListConfig, OmegaConf

from crossnet_dist.config_errors import ConfigError
from crossnet_dist.tuning.checks import validate_tune_section


def _float_leaves(node, prefix: str = ""):
    """(dotted key, value) of every float in the config, lists of specs included."""
    items = node.items() if isinstance(node, DictConfig) else enumerate(node)
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, (DictConfig, ListConfig)):
            yield from _float_leaves(value, name + ".")
        elif isinstance(value, float):
            yield name, value


def validate(cfg: DictConfig) -> None:
    def fail(key: str, why: str) -> None:
        raise ConfigError(f"config key '{key}': {why} (got {OmegaConf.select(cfg, key)!r})")

    from crossnet_dist.methods import METHODS

    if cfg.method not in METHODS:
        fail("method", f"must be one of {', '.join(sorted(METHODS))}")
    for key, value in _float_leaves(cfg):
        if not math.isfinite(value):
            fail(key, "must be a finite number")
    if not str(cfg.data.root).strip():
        fail("data.root", "must name the dataset folder or s3:// URL (an empty one would mean the working directory)")

    positive = [
        "model.image_size", "model.in_channels", "model.gen_channels", "model.disc_channels",
        "data.load_size", "data.batch_size", "data.read_ahead", "optim.lr", "optim.disc_lr_scale", "train.log_every",
        "model.disc_r1_every", "data.storage.connect_timeout_s", "data.storage.read_timeout_s",
        "train.sample_every", "train.checkpoint_every",
    ]
    non_negative = [
        "model.n_downsampling", "model.n_encoder_blocks", "model.n_translator_blocks",
        "model.disc_layers", "model.disc_r1", "optim.n_epochs", "optim.n_epochs_decay", "optim.pool_size",
        "data.num_workers", "data.max_images", "data.storage.retries", "data.storage.retry_backoff_s",
        "data.storage.retry_budget_s",
        "train.max_steps", "train.max_minutes", "train.keep_checkpoints",
    ]
    for key in positive:
        if not OmegaConf.select(cfg, key) > 0:
            fail(key, "must be > 0")
    for key in non_negative:
        if OmegaConf.select(cfg, key) < 0:
            fail(key, "must be >= 0")
    for section in cfg.loss:
        for name, value in cfg.loss[section].items():
            if value < 0:
                fail(f"loss.{section}.{name}", "loss weights must be >= 0")
    for key in ("optim.beta1", "optim.beta2"):
        if not 0.0 <= OmegaConf.select(cfg, key) < 1.0:
            fail(key, "must be in [0, 1)")
    if cfg.optim.n_epochs + cfg.optim.n_epochs_decay == 0:
        fail("optim.n_epochs", "optim.n_epochs + optim.n_epochs_decay must be > 0")
    from crossnet_dist.networks.generator import UPSAMPLE_KINDS
    from crossnet_dist.networks.init import INIT_KINDS

    if cfg.model.init not in INIT_KINDS:
        fail("model.init", f"must be one of {', '.join(INIT_KINDS)}")
    if not cfg.model.init_gain > 0:
        fail("model.init_gain", "must be > 0")
    if cfg.model.upsample not in UPSAMPLE_KINDS:
        fail("model.upsample", f"must be one of {', '.join(UPSAMPLE_KINDS)}")
    if cfg.model.disc_norm not in ("instance", "spectral"):
        fail("model.disc_norm", "must be instance or spectral")
    from crossnet_dist.networks.diff_augment import parse_policy

    try:
        parse_policy(cfg.model.disc_augment)
    except ValueError as err:
        fail("model.disc_augment", str(err))
    if cfg.model.disc_r1 and cfg.method not in ("crossnet", "cyclegan"):
        fail("model.disc_r1", f"the R1 penalty is an option of the crossnet and cyclegan PatchGANs, not of {cfg.method}")
    if not 0.0 <= cfg.train.ema_decay < 1.0:
        fail("train.ema_decay", "must be in [0, 1) (0 = off)")
    from crossnet_dist.training.divergence import NONFINITE_MODES
    from crossnet_dist.training.precision import PRECISIONS

    if cfg.train.nonfinite not in NONFINITE_MODES:
        fail("train.nonfinite", f"must be one of {', '.join(NONFINITE_MODES)}")
    if cfg.train.nonfinite_max_skips < 1:
        fail("train.nonfinite_max_skips", "must be >= 1")
    if cfg.train.precision not in PRECISIONS:
        fail("train.precision", f"must be one of {', '.join(PRECISIONS)}")
    _validate_methods(cfg, fail)
    _validate_dist(cfg, fail)
    _validate_serve(cfg, fail)
    validate_tune_section(cfg, fail)
    if cfg.data.load_size < cfg.model.image_size:
        fail("data.load_size", f"must be >= model.image_size ({cfg.model.image_size})")

    from crossnet_dist.networks.shapes import ImageSizeError, check_image_size

    try:
        check_image_size(cfg.model.image_size, cfg.model.image_size, cfg.model)
    except ImageSizeError as err:
        fail("model.image_size", str(err))


def _validate_methods(cfg: DictConfig, fail) -> None:
    """Each method's own checks (methods/options/), run whatever the method, as their keys are typed."""
    from crossnet_dist.methods.options import METHOD_OPTIONS

    for entry in METHOD_OPTIONS.values():
        if entry.validate is not None:
            entry.validate(cfg, fail)


_PLACEMENT = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def _validate_dist(cfg: DictConfig, fail) -> None:
    d = cfg.dist
    if d.num_workers < 1:
        fail("dist.num_workers", "must be >= 1")
    if d.cpus_per_worker < 0:
        fail("dist.cpus_per_worker", "must be >= 0")
    if d.zero_stage not in (0, 1, 2, 3):
        fail("dist.zero_stage", "must be one of 0, 1, 2, 3")
    if d.placement_strategy not in _PLACEMENT:
        fail("dist.placement_strategy", f"must be one of {', '.join(_PLACEMENT)}")
    for key in ("zero3_persistence_threshold", "grad_clip", "checkpoint_every", "keep_checkpoints"):
        if d[key] < 0:
            fail(f"dist.{key}", "must be >= 0")
    if d.grad_accumulation < 1:
        fail("dist.grad_accumulation", "must be >= 1")
    if d.checkpoint_every == 0:
        fail("dist.checkpoint_every", "must be > 0")
    if d.max_failures < -1:
        fail("dist.max_failures", "must be >= -1 (-1 = retry forever)")
    if not d.storage_path:
        fail("dist.storage_path", "must be a local path or s3://bucket/prefix")
    if "/" in d.run_name or d.run_name in (".", ".."):
        fail("dist.run_name", "must be a plain folder name")
    if ":" not in d.loader:
        fail("dist.loader", "must be 'module:function'")
    if d.profile_steps and d.zero_stage != 0:
        fail("dist.profile_steps", "needs dist.zero_stage=0: ZeRO 1-3 reduce inside the backward pass, where the "
             "all-reduce cannot be timed on its own")
    if cfg.train.compile and d.zero_stage == 3:
        fail("train.compile", "not with dist.zero_stage=3: ZeRO-3 gathers each module's parameters in hooks "
             "around its forward, which compiled graphs would bypass; use ZeRO 0-2")
    if cfg.train.ema_decay and d.zero_stage == 3:
        fail("train.ema_decay", "not with dist.zero_stage=3 (each rank holds only a shard of the weights to average); "
             "use ZeRO 0-2")
    if "://" in d.init_from and not d.init_from.startswith("s3://"):
        fail("dist.init_from", "must be a path or an s3:// URL of a run's step_XXXXXXXX checkpoint")


_SERVE_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _validate_serve(cfg: DictConfig, fail) -> None:
    s = cfg.serve
    if not s.host:
        fail("serve.host", "must be an address, e.g. 127.0.0.1")
    if not 0 <= s.port <= 65535:
        fail("serve.port", "must be in [0, 65535]")
    for key in ("replicas", "max_replicas", "max_ongoing_requests", "max_batch_size", "max_body_bytes", "max_pixels",
                "max_full_pixels", "max_header_bytes"):
        if s[key] < 1:
            fail(f"serve.{key}", "must be >= 1")
    if not s.body_timeout_s > 0:
        fail("serve.body_timeout_s", "must be > 0")
    if not s.header_timeout_s > 0:
        fail("serve.header_timeout_s", "must be > 0")
    if s.client_replica_s_per_s < 0:
        fail("serve.client_replica_s_per_s", "must be >= 0 (0 = no limit)")
    if not s.client_burst_s > 0:
        fail("serve.client_burst_s", "must be > 0")
    if s.min_replicas < 0:
        fail("serve.min_replicas", "must be >= 0")
    if s.min_replicas > s.max_replicas:
        fail("serve.min_replicas", f"must be <= serve.max_replicas ({s.max_replicas})")
    if not s.target_ongoing_requests > 0:
        fail("serve.target_ongoing_requests", "must be > 0")
    if s.max_queued_requests < -1 or s.max_queued_requests == 0:
        fail("serve.max_queued_requests", "must be >= 1, or -1 for no limit")
    if s.max_ongoing_requests < s.max_batch_size:
        fail("serve.max_ongoing_requests", f"must be >= serve.max_batch_size ({s.max_batch_size}) or batches never fill")
    if s.batch_wait_timeout_s < 0:
        fail("serve.batch_wait_timeout_s", "must be >= 0")
    if s.full_resolution_tile < 64 or s.full_resolution_tile % 2 ** cfg.model.n_downsampling:
        fail("serve.full_resolution_tile", f"must be >= 64 and a multiple of {2 ** cfg.model.n_downsampling} "
             "(2**model.n_downsampling)")
    if not _SERVE_DEVICE.match(s.device):
        fail("serve.device", "must be auto, cpu, cuda or cuda:N")
    if s.topology not in ("split", "single"):
        fail("serve.topology", "must be split or single")
    if s.backend not in SERVE_BACKENDS:
        fail("serve.backend", f"must be one of {', '.join(SERVE_BACKENDS)}")
    if s.backend == "onnxruntime" and (s.device.startswith("cuda") or s.gpus_per_replica > 0):
        fail("serve.backend", "onnxruntime serves on the CPU (the onnxruntime wheel has the CPU provider only); "
             "set serve.device=cpu and serve.gpus_per_replica=0, or use backend torch")
    for key in ("cpus_per_replica", "gpus_per_replica"):
        if s[key] < 0:
            fail(f"serve.{key}", "must be >= 0")
    if s.token is not None and not s.token.strip():
        fail("serve.token", "must be a non-empty string or unset")


SERVE_BACKENDS = ("torch", "onnxruntime")
