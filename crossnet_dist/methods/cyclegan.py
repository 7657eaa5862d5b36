"""CycleGAN (Zhu et al. 2017), the baseline: the same generators, no translators,
L = w_gan L_GAN + w_cyc L_cyc + (w_idt * w_cyc) L_idt as in the reference implementation."""

from __future__ import annotations

from torch import Tensor

from crossnet_dist.losses import identity_loss, image_cycle_consistency_loss, lsgan_generator_loss
from crossnet_dist.methods.base import StepOutput, TwoDomainGAN, weighted_sum
from crossnet_dist.methods.options import METHOD_OPTIONS


class CycleGAN(TwoDomainGAN):
    name = "cyclegan"
    options = METHOD_OPTIONS["cyclegan"]  # its model.cyclegan / loss.cyclegan dataclasses and their checks

    def generator_step(self, x_a: Tensor, x_b: Tensor) -> StepOutput:
        w = self.weights
        fake_b = self.translate(x_a, "a2b")
        fake_a = self.translate(x_b, "b2a")
        terms: dict[str, Tensor] = {}
        if w.gan > 0:
            Q_a, Q_b = self.discriminators["Q_a"], self.discriminators["Q_b"]
            terms["gan"] = lsgan_generator_loss(Q_b(fake_b)) + lsgan_generator_loss(Q_a(fake_a))
        if w.cycle > 0:
            terms["cycle"] = image_cycle_consistency_loss(
                self.translate(fake_b, "b2a"), x_a, self.translate(fake_a, "a2b"), x_b
            )
        if w.identity > 0 and w.cycle > 0:
            terms["identity"] = identity_loss(self.translate(x_a, "b2a"), x_a, self.translate(x_b, "a2b"), x_b)
        weights = {"gan": w.gan, "cycle": w.cycle, "identity": w.identity * w.cycle}
        return StepOutput(loss=weighted_sum(terms, weights), terms=terms, fakes={"a": fake_a, "b": fake_b})

    def sample_columns(self, x_a: Tensor, x_b: Tensor) -> dict[str, list[Tensor]]:
        fake_b, fake_a = self.translate(x_a, "a2b"), self.translate(x_b, "b2a")
        return {  # input | translation | cycle reconstruction
            "a": [x_a, fake_b, self.translate(fake_b, "b2a")],
            "b": [x_b, fake_a, self.translate(fake_a, "a2b")],
        }
