"""Typed configuration: omegaconf structured dataclasses, YAML files and dotted overrides.

`load_config("tiny", ["optim.lr=1e-4"])` merges the dataclass defaults, the YAML file and the overrides, in
order. Unknown keys and wrongly typed values fail at load time; `validate` checks values, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from crossnet_dist.config_checks import validate
from crossnet_dist.config_errors import ConfigError
from crossnet_dist.configs import resolve_config_path
from crossnet_dist.methods.options import METHOD_OPTIONS


@dataclass
class SharedModelConfig:
    """The model keys every method reads; each method's own options are added as model.<method>."""

    image_size: int = 256  # side of the square training crop, and of serving inputs
    in_channels: int = 3
    gen_channels: int = 64  # ngf: width of the generator's first conv
    n_downsampling: int = 2  # stride-2 convs in the encoder (transposed convs in the decoder)
    n_encoder_blocks: int = 9  # residual blocks at the end of each encoder
    n_translator_blocks: int = 9  # residual blocks of each latent cross-translator
    disc_channels: int = 64  # ndf
    disc_layers: int = 3  # 3 -> the 70x70 PatchGAN
    disc_norm: str = "instance"  # PatchGAN norm: instance (the papers) | spectral (spectral norm on every conv)
    # differentiable augmentation of every image the PatchGANs see in training (Zhao et al. 2020):
    # "" (off, the papers) or a comma-separated subset of color, translation, cutout
    disc_augment: str = ""
    # R1 penalty gamma on the PatchGANs' gradients at real images (Mescheder et al. 2018); 0 = off (the papers)
    disc_r1: float = 0.0
    # the penalty on every k-th discriminator step only, weighted k x gamma ("lazy regularisation",
    # Karras et al. 2020, StyleGAN2 sec. 3.1): its double backward costs ~25% of a step at 32 px on CPU
    disc_r1_every: int = 1
    # crossnet/cyclegan networks: "normal" = the CycleGAN reference's N(0, init_gain) conv weights, "pytorch" = torch's
    init: str = "normal"
    init_gain: float = 0.02
    upsample: str = "transposed"  # decoder 2x upsampling: transposed (the paper) | resize (nearest resize + conv)


# model.<method> and loss.<method> come from the methods' own registry (methods/options/). The namespace
# names this module as the classes' home, so a loaded config pickles (make_dataclass would say "types").
_HOME = {"__module__": __name__}
ModelConfig = make_dataclass(
    "ModelConfig",
    [(name, o.options, field(default_factory=o.options)) for name, o in METHOD_OPTIONS.items() if o.options],
    bases=(SharedModelConfig,),
    namespace=_HOME,
)
LossConfig = make_dataclass(
    "LossConfig",
    [(name, o.weights, field(default_factory=o.weights)) for name, o in METHOD_OPTIONS.items()],
    namespace=_HOME,
)


@dataclass
class OptimConfig:
    """Adam and the schedule. lr, betas and pool_size left unset (null) take the method's paper values
    (`TranslationMethod.optim_defaults`) at load time, so `method=unit` alone trains as UNIT did."""

    lr: Optional[float] = None
    beta1: Optional[float] = None
    beta2: Optional[float] = None
    n_epochs: int = 100  # epochs at the initial learning rate
    n_epochs_decay: int = 100  # epochs of linear decay to zero after that
    pool_size: Optional[int] = None  # history of generated images shown to the discriminators (0 = none)
    # the discriminators' lr is optim.lr x this (two time-scale updates, Heusel et al. 2017); 1 = the papers
    disc_lr_scale: float = 1.0


@dataclass
class StorageConfig:
    """Object storage options; unset values fall back to the standard AWS_* environment."""

    endpoint_url: Optional[str] = None
    key: Optional[str] = None
    secret: Optional[str] = None
    region: Optional[str] = None
    retries: int = 100  # retries of a read that failed with a transient storage error (0 = fail at once)
    retry_backoff_s: float = 0.2  # ceiling of the first back-off, doubled each retry (full jitter, at most 10 s)
    retry_budget_s: float = 120.0  # give up once a read's retries waited this long, or storage failed this long
    connect_timeout_s: float = 10.0  # one attempt's connect limit (a partitioned server never refuses)
    read_timeout_s: float = 30.0  # one attempt's limit on a silent socket (not on a whole transfer)


@dataclass
class DataConfig:
    root: str = "data/tiny"  # URL or path holding trainA/ trainB/ testA/ testB/
    load_size: int = 286  # images are resized to this, then randomly cropped to model.image_size
    flip: bool = True
    batch_size: int = 1
    num_workers: int = 0
    max_images: int = 0  # per domain; 0 = all
    read_ahead: int = 16  # images each loader worker fetches concurrently
    storage: StorageConfig = field(default_factory=StorageConfig)


@dataclass
class TrainConfig:
    out_dir: str = "runs/crossnet"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    max_steps: int = 0  # stop after this many steps; 0 = run every epoch of the schedule
    max_minutes: float = 0.0  # also stop (and checkpoint) after this many minutes of training; 0 = no limit
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 500
    keep_checkpoints: int = 3  # newest step checkpoints kept; 0 = keep all
    progress: bool = True
    # torch.compile every network (both trainers): ~13% faster CPU steps after ~1 min; not with ZeRO-3
    compile: bool = False
    # exponential moving average of the translation networks' weights (0 = off, e.g. 0.999): when on,
    # generator.pt, eval, Tune scoring and serving use the averaged weights; not with dist.zero_stage=3
    ema_decay: float = 0.0
    # a non-finite loss: "stop" (an error naming the step and the term; nothing diverged is saved) or
    # "skip" (that update is skipped and counted, guard/skipped_*; one host sync per update)
    nonfinite: str = "stop"
    nonfinite_max_skips: int = 10  # skip: more steps in a row with a skipped update stop the run
    precision: str = "auto"  # auto (bf16 on a bf16 GPU, else fp32) | fp32 | bf16 autocast: training/precision.py
    channels_last: bool = False  # NHWC weights and batches (both trainers); pays on GPUs


@dataclass
class DistributedConfig:
    """`crossnet train` on a Ray cluster (Ray Train workers, DeepSpeed ZeRO); ignored by `--local`."""

    num_workers: int = 2  # Ray Train workers (one GPU each with use_gpu)
    use_gpu: bool = False  # one GPU per worker and NCCL (precision: train.precision); else CPUs and gloo
    cpus_per_worker: float = 1.0  # logical CPUs each worker reserves
    placement_strategy: str = "PACK"  # PACK | SPREAD | STRICT_PACK | STRICT_SPREAD
    zero_stage: int = 2  # DeepSpeed ZeRO: 0 off, 1 optimizer state, 2 + gradients, 3 + parameters
    zero3_persistence_threshold: int = 100000  # ZeRO-3 keeps parameters this small whole on every rank
    grad_clip: float = 0.0  # global gradient-norm clip per network group; 0 = off
    grad_accumulation: int = 1  # micro-batches per optimiser step
    storage_path: str = "runs/ray"  # run folders go here: a local path or s3://bucket/prefix
    run_name: str = ""  # "" = <basename of train.out_dir>-<timestamp>
    max_failures: int = 1  # worker-group restarts from the last checkpoint before giving up; -1 = forever
    checkpoint_every: int = 100  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept in storage; 0 = keep all
    address: str = ""  # Ray cluster address; "" = RAY_ADDRESS, else a local Ray on 127.0.0.1
    loader: str = "crossnet_dist.data:build_train_loader"  # module:f(data_cfg, image_size, seed, rank, world_size, pin_memory)
    # a new run starts from this checkpoint of another run (weights, optimiser state, image pools, step; LR from
    # optim.lr): <storage>/<run>/step_XXXXXXXX, a path or s3:// URL. "" = from scratch; ignored on resume; PBT sets it.
    init_from: str = ""
    profile_steps: bool = False  # ZeRO-0: perf/part_*_s, where a step's time goes (distributed/step_parts.py)


@dataclass
class ServeConfig:
    """`crossnet serve`: the Ray Serve endpoint (see crossnet_dist/serving/)."""
    host: str = "127.0.0.1"  # HTTP proxy address; 0.0.0.0 only inside a container/cluster
    port: int = 8000
    replicas: int = 1  # model replicas when not autoscaling
    autoscale: bool = False  # scale model replicas between min_replicas and max_replicas
    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 2.0  # autoscaling target per replica
    max_ongoing_requests: int = 16  # requests a model replica holds at once (>= max_batch_size)
    max_queued_requests: int = 64  # requests waiting for a replica beyond that; more get HTTP 503
    max_batch_size: int = 8  # @serve.batch; 1 = batching off
    batch_wait_timeout_s: float = 0.01  # longest a batch waits to fill while others are in flight; a lone one never waits
    device: str = "auto"  # auto | cpu | cuda | cuda:N (auto: cuda when gpus_per_replica > 0 and one is visible)
    backend: str = "torch"  # torch: a generator.pt | onnxruntime: files from `crossnet export --format onnx` (CPU)
    topology: str = "split"  # split: ingress + model deployments | single: one deployment, one hop less (deploy.py)
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    max_body_bytes: int = 16 * 1024 * 1024  # larger uploads get HTTP 413
    body_timeout_s: float = 15.0  # a body not fully received by then gets HTTP 408 (slow or stalled clients)
    header_timeout_s: float = 15.0  # a request head (line + headers) not complete by then gets 408 (the proxy's)
    max_header_bytes: int = 16 * 1024  # request headers larger than this in all get HTTP 431
    max_pixels: int = 4096 * 4096  # width x height read from the header, before decoding; larger get 413
    max_full_pixels: int = 2048 * 2048  # ?resolution=full forwards over every pixel: larger get 413 (model takes them)
    full_resolution_tile: int = 512  # ?resolution=full: larger images translate in tiles of this many px
    client_replica_s_per_s: float = 0.0  # replica seconds a client may use per second (429 beyond); 0 = no limit
    client_burst_s: float = 10.0  # replica seconds a client may use at once before that rate applies
    trust_forwarded_for: bool = False  # the client is X-Forwarded-For's first address (only behind a proxy that sets it)
    token: Optional[str] = None  # bearer token for /translate and /info; else env CROSSNET_SERVE_TOKEN; unset = open
    storage: StorageConfig = field(default_factory=StorageConfig)  # for s3:// checkpoints


@dataclass
class ParamSpec:
    """One searched config key (`tune.space`): a range (uniform, loguniform, randint), a list of
    values (choice: sampled; grid: every value, crossed with the other grids)."""

    type: str = "uniform"  # uniform | loguniform | quniform | randint | choice | grid
    low: Optional[float] = None  # ranges: bounds (randint: high exclusive)
    high: Optional[float] = None
    q: Optional[float] = None  # quniform: step
    values: Optional[List[Any]] = None  # choice | grid


@dataclass
class ASHAOptions:
    """ASHA rungs are counted in training steps (`progress/step`); a rung's decision is made on the
    held-out metric of the first checkpoint at or after it."""

    grace_period: int = 0  # steps before a trial can be stopped; 0 = dist.checkpoint_every
    reduction_factor: float = 2.0
    max_t: int = 0  # 0 = train.max_steps
    brackets: int = 1


@dataclass
class PBTOptions:
    """Population Based Training (tune.scheduler=pbt), in training steps: every
    perturbation_interval steps, a trial in the bottom quantile_fraction of the running trials (by
    the held-out metric of its newest checkpoint) continues from the newest checkpoint of a trial in
    the top quantile, with that trial's searched values resampled (resample_probability) or
    multiplied by one of perturbation_factors, then clipped to the searched range. No move happens
    at a trial's last step (it would only copy the donor's final model)."""

    perturbation_interval: int = 0  # steps; 0 = dist.checkpoint_every; a multiple of dist.checkpoint_every
    burn_in: int = 0  # steps before the first perturbation
    quantile_fraction: float = 0.25  # in (0, 0.5]
    resample_probability: float = 0.25
    perturbation_factors: List[float] = field(default_factory=lambda: [1.2, 0.8])
    # True: the population perturbs in lock step (waits for the slowest trial; every move happens).
    # False: a trial is compared with the scores reported before it, so early moves depend on timing.
    synch: bool = False


@dataclass
class TuneConfig:
    """`crossnet tune`: a Ray Tune campaign over config keys (by default the five CrossNet loss
    weights), each trial a distributed training run (dist.*) scored on the held-out split."""

    name: str = ""  # campaign folder under storage_path; "" = <basename of train.out_dir>-tune-<timestamp>
    storage_path: str = ""  # "" = dist.storage_path (a local path or s3://bucket/prefix)
    space: Dict[str, ParamSpec] = field(default_factory=dict)  # {} = the five loss.crossnet weights
    metric: str = "fd_efflite0"  # evaluation metric of the held-out split (lower is better)
    mode: str = "min"
    split: str = "test"  # held-out split of data.root scored at every checkpoint: val (data/splits.py) or test
    eval_max_images: int = 0  # per domain; 0 = the whole split
    eval_device: str = "cpu"  # where the trial driver scores checkpoints
    scheduler: str = "asha"  # asha | pbt | fifo
    asha: ASHAOptions = field(default_factory=ASHAOptions)
    pbt: PBTOptions = field(default_factory=PBTOptions)
    searcher: str = "random"  # random (grid entries are crossed) | optuna (TPE; no grid entries; not with pbt)
    num_samples: int = 8  # samples of the space (each crossed with every grid entry)
    max_concurrent_trials: int = 1
    time_budget_s: float = 86400.0  # the campaign stops after this long (unfinished trials resume with --resume)
    trial_cpus: float = 0.01  # CPUs the trial driver reserves (the workers reserve dist.cpus_per_worker each)
    seed: int = 0  # searcher seed


@dataclass
class Config:
    method: str = "crossnet"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dist: DistributedConfig = field(default_factory=DistributedConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Defaults <- YAML file <- dotted overrides, then `validate`."""
    cfg = OmegaConf.structured(Config)
    if path is not None:
        path = resolve_config_path(path)
        try:
            loaded = OmegaConf.load(path)
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
            raise ConfigError(f"config file {path} is not valid YAML{at}: {getattr(err, 'problem', None) or err}") from None
        except OSError as err:  # omegaconf: "Invalid loaded object type: int" for a scalar document
            loaded = str(err)
        if not isinstance(loaded, DictConfig):
            what = "a list" if isinstance(loaded, ListConfig) else "a single value"
            raise ConfigError(f"config file {path} must hold a mapping of sections (method:, model:, ...), not {what}")
        try:
            cfg = OmegaConf.merge(cfg, loaded)
        except OmegaConfBaseException as err:
            raise ConfigError(_describe(err, f" in {path}")) from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
    if overrides:
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        except OmegaConfBaseException as err:
            raise ConfigError(_describe(err, " (command-line override)")) from None
    apply_method_defaults(cfg)
    validate(cfg)
    return cfg


def apply_method_defaults(cfg: DictConfig) -> None:
    """Fills the optim.* keys left unset with the values of the method's paper."""
    from crossnet_dist.methods import METHODS

    method = METHODS.get(cfg.method)
    if method is None:
        return  # validate names the key
    for key, value in method.optim_defaults.items():
        if cfg.optim[key] is None:
            cfg.optim[key] = value


def config_from_container(container: dict[str, Any]) -> DictConfig:
    """Rebuilds a validated config from a plain dict (as stored in checkpoints)."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), container)
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err, " (stored config)")) from None
    apply_method_defaults(cfg)
    validate(cfg)
    return cfg


def config_with(base: dict[str, Any], values: dict[str, Any]) -> DictConfig:
    """`base` (a plain config dict) with dotted keys set to `values`, validated (errors name the key):
    a Tune trial's config from the campaign's."""
    cfg = OmegaConf.create(base)
    for key, value in values.items():
        if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
            value = value.item()  # numpy scalars (from samplers) as Python numbers
        OmegaConf.update(cfg, key, value, merge=False)
    return config_from_container(to_container(cfg))


def to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _describe(err: OmegaConfBaseException, where: str) -> str:
    key = getattr(err, "full_key", None)
    msg = str(err).splitlines()[0]
    if key:
        return f"config key '{key}'{where}: {msg}"
    return f"config{where}: {msg}"
