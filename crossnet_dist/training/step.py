"""One GAN training step, shared by the single-process and the distributed trainers."""

from __future__ import annotations

from torch import Tensor, nn

from crossnet_dist.image_pool import ImagePool
from crossnet_dist.methods import TranslationMethod
from crossnet_dist.training.optimizers import OptimizerGroup


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def train_step(
    method: TranslationMethod,
    x_a: Tensor,
    x_b: Tensor,
    g_opt: OptimizerGroup,
    d_opt: OptimizerGroup,
    pools: dict[str, ImagePool],
) -> dict[str, Tensor]:
    """Generator update with the discriminators frozen, then `method.critic_steps` discriminator
    updates (1 unless the method says otherwise) on the pooled fakes; the logged D terms are the last one's.

    Freezing keeps the generator loss from leaving gradients in the discriminators (and is what
    DeepSpeed ZeRO needs when the two groups are separate engines). Returns detached loss terms.
    """
    set_requires_grad(method.discriminators, False)
    g_out = method.generator_step(x_a, x_b)
    g_opt.backward_step(g_out.loss)
    set_requires_grad(method.discriminators, True)

    fakes = {domain: pools[domain].query(fake) for domain, fake in g_out.fakes.items()}
    for _ in range(max(1, int(getattr(method, "critic_steps", 1)))):  # WGAN-GP: n_critic updates
        d_out = method.discriminator_step(x_a, x_b, fakes)
        d_opt.backward_step(d_out.loss)

    metrics = {f"loss/{k}": v.detach() for k, v in g_out.terms.items()}
    metrics.update({f"loss/{k}": v.detach() for k, v in d_out.terms.items()})
    metrics["loss/G_total"] = g_out.loss.detach()
    metrics["loss/D_total"] = d_out.loss.detach()
    return metrics
