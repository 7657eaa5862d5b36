"""One GAN training step, shared by the single-process and the distributed trainers."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import torch
from torch import Tensor, nn

from crossnet_dist.image_pool import ImagePool
from crossnet_dist.methods import StepOutput, TranslationMethod
from crossnet_dist.training.optimizers import OptimizerGroup
from crossnet_dist.training.precision import FP32, StepPrecision

T = TypeVar("T")


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def step_batches(batches: Iterable[T], method: TranslationMethod) -> Iterator[list[T]]:
    """Groups the loader's batches into the `method.batches_per_step` batches each step consumes
    (one per critic update for WGAN-GP); the last group of an epoch may be shorter."""
    n = method.batches_per_step
    group: list[T] = []
    for batch in batches:
        group.append(batch)
        if len(group) == n:
            yield group
            group = []
    if group:
        yield group


def train_step(
    method: TranslationMethod,
    x_a: Tensor,
    x_b: Tensor,
    g_opt: OptimizerGroup,
    d_opt: OptimizerGroup,
    pools: dict[str, ImagePool],
    critic_batches: Sequence[tuple[Tensor, Tensor]] = (),
    gate: Callable[[str, Tensor], bool] | None = None,
    precision: StepPrecision = FP32,
) -> dict[str, Tensor]:
    """One generator update and the method's discriminator update(s); returns detached loss terms
    (the logged D terms are the last update's).

    Generator first (CrossNet, CycleGAN, XGAN, as their reference code): the G update on (x_a, x_b)
    with the discriminators frozen, then one D update on that update's fakes, through the pools.
    Discriminator first (`method.discriminator_first`: UNIT sec. 3, WGAN-GP's Algorithm 1): a D
    update on each of `critic_batches` and then (x_a, x_b), every one on fakes that the current
    generators make from that batch (no grad), then the G update on (x_a, x_b) against the updated D.

    Freezing keeps the generator loss from leaving gradients in the discriminators (and is what
    DeepSpeed ZeRO needs when the two groups are separate engines). `gate("G" | "D", loss)`, if
    given, may veto an update (train.nonfinite=skip: training.divergence.FiniteGate). The forward
    passes run under `precision`'s autocast, the backward passes and updates outside it.
    """
    autocast = lambda: precision.autocast(x_a.device.type)  # noqa: E731
    d_out: StepOutput | None = None
    if method.discriminator_first:
        for c_a, c_b in [*critic_batches, (x_a, x_b)]:
            with torch.no_grad(), autocast():
                fakes = method.discriminator_fakes(c_a, c_b)
            d_out = _discriminator_update(method, c_a, c_b, fakes, d_opt, pools, gate, autocast)
    elif critic_batches:
        raise ValueError(f"method {method.name!r} updates its discriminators once per step, after the generators")

    set_requires_grad(method.discriminators, False)
    with autocast():
        g_out = method.generator_step(x_a, x_b)
    if gate is None or gate("G", g_out.loss):
        g_opt.backward_step(g_out.loss)
    set_requires_grad(method.discriminators, True)
    if d_out is None:
        d_out = _discriminator_update(method, x_a, x_b, g_out.fakes, d_opt, pools, gate, autocast)

    metrics = {f"loss/{k}": v.detach() for k, v in g_out.terms.items()}
    metrics.update({f"loss/{k}": v.detach() for k, v in d_out.terms.items()})
    metrics["loss/G_total"] = g_out.loss.detach()
    metrics["loss/D_total"] = d_out.loss.detach()
    return metrics


def _discriminator_update(method, x_a, x_b, fakes, d_opt, pools, gate, autocast) -> StepOutput:
    pooled = {domain: pools[domain].query(fake) for domain, fake in fakes.items()}
    with autocast():
        d_out = method.discriminator_step(x_a, x_b, pooled)
    if gate is None or gate("D", d_out.loss):
        d_opt.backward_step(d_out.loss)
    return d_out
