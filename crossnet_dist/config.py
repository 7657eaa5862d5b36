"""Typed configuration: omegaconf structured dataclasses, YAML files and dotted overrides.

`load_config("jobs/configs/tiny.yaml", ["optim.lr=1e-4"])` merges, in order, the
dataclass defaults, the YAML file and the overrides. Unknown keys and values of
the wrong type fail at load time; `validate` then checks values (ranges,
choices) and every error names the offending key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A configuration key is unknown, mistyped or out of range; the message names the key."""


@dataclass
class ModelConfig:
    image_size: int = 256  # side of the square training crop, and of serving inputs
    in_channels: int = 3
    gen_channels: int = 64  # ngf: width of the generator's first conv
    n_downsampling: int = 2  # stride-2 convs in the encoder (transposed convs in the decoder)
    n_encoder_blocks: int = 9  # residual blocks at the end of each encoder
    n_translator_blocks: int = 9  # residual blocks of each latent cross-translator
    disc_channels: int = 64  # ndf
    disc_layers: int = 3  # 3 -> the 70x70 PatchGAN


@dataclass
class CrossNetLossWeights:
    """Eq. 5 of the CrossNet paper; each weight may be 0 (the Fig. 5 ablation)."""

    gan: float = 1.0
    identity: float = 3.0  # L_Id, eq. 2
    cross_translation: float = 3.0  # L_CTC, eq. 3
    cross_identity: float = 6.0  # L_ZId, eq. 1
    latent_cycle: float = 6.0  # L_ZCyc, eq. 4


@dataclass
class CycleGANLossWeights:
    """The CycleGAN reference defaults: lambda_A = lambda_B = 10, lambda_identity = 0.5."""

    gan: float = 1.0
    cycle: float = 10.0
    identity: float = 0.5  # relative to `cycle`, as in the reference implementation


@dataclass
class LossConfig:
    crossnet: CrossNetLossWeights = field(default_factory=CrossNetLossWeights)
    cyclegan: CycleGANLossWeights = field(default_factory=CycleGANLossWeights)


@dataclass
class OptimConfig:
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_epochs: int = 100  # epochs at the initial learning rate
    n_epochs_decay: int = 100  # epochs of linear decay to zero after that
    pool_size: int = 50  # history of generated images shown to the discriminators


@dataclass
class StorageConfig:
    """Object storage options; unset values fall back to the standard AWS_* environment."""

    endpoint_url: Optional[str] = None
    key: Optional[str] = None
    secret: Optional[str] = None
    region: Optional[str] = None
    retries: int = 5  # attempts for a transient storage error
    retry_backoff_s: float = 0.2  # first back-off, doubled each attempt


@dataclass
class DataConfig:
    root: str = "data/tiny"  # URL or path holding trainA/ trainB/ testA/ testB/
    load_size: int = 286  # images are resized to this, then randomly cropped to model.image_size
    flip: bool = True
    batch_size: int = 1
    num_workers: int = 0
    max_images: int = 0  # per domain; 0 = all
    storage: StorageConfig = field(default_factory=StorageConfig)


@dataclass
class TrainConfig:
    out_dir: str = "runs/crossnet"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    max_steps: int = 0  # stop after this many steps; 0 = run every epoch of the schedule
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 500
    keep_checkpoints: int = 3  # newest step checkpoints kept; 0 = keep all
    progress: bool = True


@dataclass
class Config:
    method: str = "crossnet"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Defaults <- YAML file <- dotted overrides, then `validate`."""
    cfg = OmegaConf.structured(Config)
    try:
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value")
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err, path)) from None
    validate(cfg)
    return cfg


def config_from_container(container: dict[str, Any]) -> DictConfig:
    """Rebuilds a validated config from a plain dict (as stored in checkpoints)."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), container)
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err, None)) from None
    validate(cfg)
    return cfg


def to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _describe(err: OmegaConfBaseException, path: Path | None) -> str:
    key = getattr(err, "full_key", None)
    where = f" in {path}" if path else ""
    msg = str(err).splitlines()[0]
    if key:
        return f"config key '{key}'{where}: {msg}"
    return f"config{where}: {msg}"


def validate(cfg: DictConfig) -> None:
    def fail(key: str, why: str) -> None:
        raise ConfigError(f"config key '{key}': {why} (got {OmegaConf.select(cfg, key)!r})")

    from crossnet_dist.methods import METHODS

    if cfg.method not in METHODS:
        fail("method", f"must be one of {', '.join(sorted(METHODS))}")

    positive = [
        "model.image_size", "model.in_channels", "model.gen_channels", "model.disc_channels",
        "data.load_size", "data.batch_size", "optim.lr", "train.log_every",
        "train.sample_every", "train.checkpoint_every",
    ]
    non_negative = [
        "model.n_downsampling", "model.n_encoder_blocks", "model.n_translator_blocks",
        "model.disc_layers", "optim.n_epochs", "optim.n_epochs_decay", "optim.pool_size",
        "data.num_workers", "data.max_images", "data.storage.retries",
        "train.max_steps", "train.keep_checkpoints",
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
    if cfg.data.load_size < cfg.model.image_size:
        fail("data.load_size", f"must be >= model.image_size ({cfg.model.image_size})")

    from crossnet_dist.networks.shapes import ImageSizeError, check_image_size

    try:
        check_image_size(cfg.model.image_size, cfg.model.image_size, cfg.model)
    except ImageSizeError as err:
        fail("model.image_size", str(err))
