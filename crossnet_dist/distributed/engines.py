"""DeepSpeed engines for a method's two network groups, behind the trainer's OptimizerGroup protocol.

One engine wraps `method.generators`, another `method.discriminators`; each has its own config
dict (ZeRO stage, precision, clipping, accumulation), its own torch Adam and its own per-epoch
linear-decay schedule. The shared `train_step` only sees `backward_step(loss)`.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import Tensor, nn

from crossnet_dist.training.optimizers import adam, linear_decay


def _skip_shm_comm_build() -> None:
    """DeepSpeed compiles a shared-memory comm op (~70 s) on CPU that only inference all-reduce
    uses; training does not need it. Patched through sys.modules: `import deepspeed.comm.torch`
    would bind the real `torch` package."""
    import deepspeed.comm.torch  # noqa: F401

    sys.modules["deepspeed.comm.torch"].build_shm_op = lambda: None


def deepspeed_config(dist_cfg, micro_batch_size: int) -> dict[str, Any]:
    """The plain-dict DeepSpeed config of one engine (DeepSpeed rejects a DictConfig).

    DeepSpeed's own bf16 mode stays off: bf16 is autocast around the forward passes
    (`train.precision`, training/precision.py), so the engines hold fp32 weights, reduce fp32
    gradients and keep the losses in fp32, as the single-process trainer does."""
    zero: dict[str, Any] = {"stage": int(dist_cfg.zero_stage)}
    if dist_cfg.zero_stage == 3:
        zero["stage3_param_persistence_threshold"] = int(dist_cfg.zero3_persistence_threshold)
    return {
        "train_micro_batch_size_per_gpu": int(micro_batch_size),
        "gradient_accumulation_steps": int(dist_cfg.grad_accumulation),
        "gradient_clipping": float(dist_cfg.grad_clip),
        "zero_optimization": zero,
        "bf16": {"enabled": False},
        "fp16": {"enabled": False},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


class DeepSpeedOptimizerGroup:
    """OptimizerGroup over a DeepSpeed engine: backward_step = engine.backward + engine.step
    (DeepSpeed scales by the accumulation steps, reduces/partitions gradients, clips and
    steps the optimiser on accumulation boundaries). The per-epoch LR schedule is ours: DeepSpeed
    would step a scheduler every optimiser step. Engine state (weights, optimiser shards) lives
    in DeepSpeed checkpoints; `state_dict` holds only the schedule."""

    def __init__(self, engine, scheduler: torch.optim.lr_scheduler.LRScheduler):
        self.engine = engine
        self.scheduler = scheduler
        self.measure_grads = False
        self.grad_bytes = 0
        self.parts = None  # a distributed.step_parts.StepParts when dist.profile_steps is on

    def backward_step(self, loss: Tensor) -> None:
        if self.parts is not None:
            self.parts.backward_step(self.engine, loss, before_step=self._measure_grads)
            return
        self.engine.backward(loss)
        self._measure_grads()
        self.engine.step()

    def _measure_grads(self) -> None:
        if self.measure_grads and self.engine.is_gradient_accumulation_boundary():
            self.grad_bytes = gradient_bytes(self.engine)

    def end_epoch(self) -> None:
        import warnings

        with warnings.catch_warnings():  # after a resume at an epoch's end no step has run in this process yet
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            self.scheduler.step()

    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def set_base_lr(self, lr: float) -> None:
        """Sets the schedule's base LR and the current LR it implies (after a restore, which
        brings the saved run's LR along)."""
        s = self.scheduler
        s.base_lrs = [float(lr)] * len(s.base_lrs)
        lrs = [base * factor(s.last_epoch) for base, factor in zip(s.base_lrs, s.lr_lambdas)]
        for group, value in zip(s.optimizer.param_groups, lrs):
            group["lr"] = value
        s._last_lr = lrs

    def state_dict(self) -> dict:
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])


def build_engine(module: nn.Module, group: str, optim_cfg, dist_cfg, micro_batch_size: int) -> DeepSpeedOptimizerGroup:
    """group: "generators" or "discriminators" (its learning rate, training/optimizers.group_lr)."""
    import deepspeed

    _skip_shm_comm_build()
    optimizer = adam(module.parameters(), optim_cfg, group)
    # The scheduler holds the torch optimiser's param_groups dicts, which DeepSpeed's ZeRO
    # optimisers keep using, so setting the LR here reaches the sharded optimiser too.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(optim_cfg.n_epochs, optim_cfg.n_epochs_decay))
    engine, _, _, _ = deepspeed.initialize(
        model=module,
        optimizer=optimizer,
        config=deepspeed_config(dist_cfg, micro_batch_size),
        dist_init_required=False,
    )
    if dist_cfg.zero_stage == 0 and engine.dp_world_size == 1:
        # One data-parallel rank has nothing to all-reduce, yet DeepSpeed would still flatten every
        # gradient into a bucket, "reduce" it and copy it back: 2.5% of the tiny model's CPU step.
        engine.enable_backward_allreduce = False
    return DeepSpeedOptimizerGroup(engine, scheduler)


# ---- per-rank memory accounting ------------------------------------------------------------


def _bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None or not torch.is_tensor(t) or t.numel() == 0:
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel())
        if key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total


def _flatten(obj):
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _flatten(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _flatten(v)


def _base_optimizer(engine) -> torch.optim.Optimizer:
    opt = engine.optimizer
    return getattr(opt, "optimizer", opt)  # ZeRO optimisers wrap the torch one


def parameter_bytes(engine) -> int:
    """Bytes of model parameters this rank holds (its ZeRO-3 partition, else the whole model)."""
    return _bytes(getattr(p, "ds_tensor", p) for p in engine.module.parameters())


def optimizer_state_bytes(engine) -> int:
    """Bytes of Adam moments this rank holds (its partition under ZeRO 1-3)."""
    return _bytes(_flatten(list(_base_optimizer(engine).state.values())))


def master_weight_bytes(engine) -> int:
    """Bytes of fp32 master weights the ZeRO optimiser keeps besides the module's parameters."""
    opt = engine.optimizer
    groups = getattr(opt, "single_partition_of_fp32_groups", None) or getattr(opt, "fp32_partitioned_groups_flat", None)
    if not groups:
        return 0
    module_ptrs = {getattr(p, "ds_tensor", p).untyped_storage().data_ptr() for p in engine.module.parameters()}
    return _bytes(t for t in groups if t.untyped_storage().data_ptr() not in module_ptrs)


def gradient_bytes(engine) -> int:
    """Bytes of gradients this rank holds after a backward on an accumulation boundary: full
    .grad tensors (ZeRO 0/1) plus reduced gradient partitions (ZeRO 2/3)."""
    tensors = [p.grad for p in engine.module.parameters()]
    averaged = getattr(engine.optimizer, "averaged_gradients", None)
    if isinstance(averaged, dict):
        tensors.extend(_flatten(list(averaged.values())))
    return _bytes(tensors)


def memory_report(prefix: str, group: DeepSpeedOptimizerGroup) -> dict[str, float]:
    e = group.engine
    return {
        f"mem/{prefix}_param_bytes": float(parameter_bytes(e)),
        f"mem/{prefix}_grad_bytes": float(group.grad_bytes),
        f"mem/{prefix}_optim_state_bytes": float(optimizer_state_bytes(e)),
        f"mem/{prefix}_master_bytes": float(master_weight_bytes(e)),
    }
