"""The method interface: what the trainer, checkpointing and serving know of a method.

A method owns two groups of networks (`generators`, trained by the generator step, and
`discriminators`, trained by the discriminator step), computes the losses of one step of
each, and translates. Everything else (optimisers, data, distribution, storage) lives
outside and sees a method only through this class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from crossnet_dist.losses import lsgan_discriminator_loss, r1_penalty

DIRECTIONS = ("a2b", "b2a")


@dataclass
class StepOutput:
    loss: Tensor  # the weighted total to back-propagate
    terms: dict[str, Tensor]  # each unweighted term, for logging
    fakes: dict[str, Tensor] = field(default_factory=dict)  # generated images the discriminator step needs


class TranslationMethod(nn.Module):
    name: ClassVar[str]
    # Modules of `generators` that test-time translation uses: exported to serving checkpoints.
    translation_modules: ClassVar[tuple[str, ...]]
    # The order of a step (`training.step.train_step`): False = the generator update, then one
    # discriminator update on its fakes; True = `critic_steps` discriminator updates, each on a batch
    # of its own and fakes made for it (`discriminator_fakes`), then the generator update.
    discriminator_first: bool = False
    critic_steps: int = 1  # a method may set it per instance, from its config

    # The paper's optimiser, set by every method: Adam lr, beta1, beta2, and pool_size (the history of
    # fakes shown to the discriminators); optim.* keys a config leaves unset take these
    # (config.apply_method_defaults).
    optim_defaults: ClassVar[dict[str, float | int]]
    # The method's entry in methods/options/: its model.<name> options, loss.<name> weights, their checks.
    options: ClassVar[Any]

    def __init__(self, model_cfg, loss_cfg, inference: bool = False):
        super().__init__()
        self.model_cfg = model_cfg
        self.weights = loss_cfg
        self.inference = inference
        self.generators = nn.ModuleDict()
        self.discriminators = nn.ModuleDict()

    def generator_step(self, x_a: Tensor, x_b: Tensor) -> StepOutput:
        raise NotImplementedError

    def discriminator_step(self, x_a: Tensor, x_b: Tensor, fakes: dict[str, Tensor]) -> StepOutput:
        raise NotImplementedError

    def discriminator_fakes(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        """The fakes a discriminator-first step shows the discriminators (called without grad)."""
        raise NotImplementedError

    @property
    def batches_per_step(self) -> int:
        """Loader batches one training step consumes: one per critic update when they come first."""
        return max(1, int(self.critic_steps)) if self.discriminator_first else 1

    # direction -> (encoder, decoder) in `generators`; methods whose translation is an encoder
    # followed by a decoder set this and inherit `translate`, others override `translate`.
    encoder_decoder: ClassVar[dict[str, tuple[str, str]]] = {}

    def translate(self, x: Tensor, direction: str) -> Tensor:
        check_direction(direction)
        encoder, decoder = self.encoder_decoder[direction]
        return self.generators[decoder](self.generators[encoder](x))

    def sample_columns(self, x_a: Tensor, x_b: Tensor) -> dict[str, list[Tensor]]:
        """Rows of images for the sample grid, one row per direction: input | translation | ..."""
        raise NotImplementedError

    def translation_state_dict(self) -> dict[str, dict[str, Tensor]]:
        return {name: self.generators[name].state_dict() for name in self.translation_modules}

    def load_translation_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        missing = [name for name in self.translation_modules if name not in state]
        if missing:
            raise KeyError(f"serving state lacks modules {missing}")
        for name in self.translation_modules:
            self.generators[name].load_state_dict(state[name])


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: expected one of {', '.join(DIRECTIONS)}")


class TwoDomainGAN(TranslationMethod):
    """Shared by CrossNet and CycleGAN: generators (E_ab, D_b) and (E_ba, D_a), PatchGANs Q_a, Q_b,
    least-squares discriminator losses fed with pooled fakes."""

    translation_modules = ("E_ab", "D_b", "E_ba", "D_a")
    encoder_decoder = {"a2b": ("E_ab", "D_b"), "b2a": ("E_ba", "D_a")}
    # CrossNet sec. 3.5 and CycleGAN sec. 4 (its reference code): Adam 2e-4 (0.5, 0.999), a pool of 50 fakes
    optim_defaults = {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "pool_size": 50}

    def __init__(self, model_cfg, loss_cfg, inference: bool = False):
        super().__init__(model_cfg, loss_cfg, inference)
        self._d_steps = 0  # discriminator steps taken (model.disc_r1_every)
        from crossnet_dist.networks import Decoder, Encoder, PatchGAN

        for name, net in (("E_ab", Encoder), ("D_b", Decoder), ("E_ba", Encoder), ("D_a", Decoder)):
            self.generators[name] = self.initialised(net(model_cfg))
        if not inference:
            self.discriminators["Q_a"] = self.initialised(PatchGAN(model_cfg))
            self.discriminators["Q_b"] = self.initialised(PatchGAN(model_cfg))

    def initialised(self, net: nn.Module) -> nn.Module:
        """`net` with the weight initialisation of model.init (the CycleGAN reference's N(0, 0.02) by default)."""
        from crossnet_dist.networks.init import init_weights

        return init_weights(net, self.model_cfg.init, self.model_cfg.init_gain)

    def _r1_weight(self) -> float:
        """model.disc_r1 x disc_r1_every on every disc_r1_every-th discriminator step (the first included), else 0."""
        every = self.model_cfg.disc_r1_every
        self._d_steps += 1
        return self.model_cfg.disc_r1 * every if (self._d_steps - 1) % every == 0 else 0.0

    def discriminator_step(self, x_a: Tensor, x_b: Tensor, fakes: dict[str, Tensor]) -> StepOutput:
        Q_a, Q_b = self.discriminators["Q_a"], self.discriminators["Q_b"]
        gamma = self._r1_weight()
        if gamma:
            x_a, x_b = x_a.detach().requires_grad_(True), x_b.detach().requires_grad_(True)
        real_a, real_b = Q_a(x_a), Q_b(x_b)
        d_a = lsgan_discriminator_loss(real_a, Q_a(fakes["a"].detach()))
        d_b = lsgan_discriminator_loss(real_b, Q_b(fakes["b"].detach()))
        terms = {"D_a": d_a, "D_b": d_b}
        if not gamma:
            return StepOutput(loss=d_a + d_b, terms=terms)
        r1 = r1_penalty(real_a, x_a) + r1_penalty(real_b, x_b)
        # logged x disc_r1_every: over a window of whole periods its mean is the mean penalty
        terms["R1"] = r1 * self.model_cfg.disc_r1_every
        return StepOutput(loss=d_a + d_b + gamma * r1, terms=terms)



def weighted_sum(terms: dict[str, Tensor], weights) -> Tensor:
    total = None
    for name, value in terms.items():
        part = weights[name] * value
        total = part if total is None else total + part
    if total is None:
        raise ValueError("every loss weight is 0: nothing to train")
    return total


def zero() -> Tensor:
    return torch.zeros(())
