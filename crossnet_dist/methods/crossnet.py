"""CrossNet (Sendik, Lischinski, Cohen-Or 2019): two encoder-decoder GANs plus latent cross-translators.

Generator step, eq. 5: L = w_gan L_GAN + w_id L_Id + w_ctc L_CTC + w_zid L_ZId + w_zcyc L_ZCyc.
Terms of weight 0 are not computed. E_ab(x_a) and E_ba(x_b) are computed once and feed the GAN,
ZId, CTC and ZCyc terms; E_ba(x_a) and E_ab(x_b) feed both Id and CTC.
"""

from __future__ import annotations

import torch
from torch import Tensor

from crossnet_dist.losses import (
    identity_loss,
    latent_cross_identity_loss,
    latent_cross_translation_consistency_loss,
    latent_cycle_consistency_loss,
    lsgan_generator_loss,
)
from crossnet_dist.methods.base import StepOutput, TwoDomainGAN, weighted_sum
from crossnet_dist.methods.options import METHOD_OPTIONS
from crossnet_dist.networks import LatentTranslator


class CrossNet(TwoDomainGAN):
    name = "crossnet"
    options = METHOD_OPTIONS["crossnet"]  # its model.crossnet / loss.crossnet dataclasses and their checks

    def __init__(self, model_cfg, loss_cfg, inference: bool = False):
        super().__init__(model_cfg, loss_cfg, inference)
        if not inference:
            self.generators["T_ab"] = self.initialised(LatentTranslator(model_cfg))  # Z_A -> Z_B
            self.generators["T_ba"] = self.initialised(LatentTranslator(model_cfg))  # Z_B -> Z_A

    def generator_step(self, x_a: Tensor, x_b: Tensor) -> StepOutput:
        g, w = self.generators, self.weights
        E_ab, E_ba, D_a, D_b = g["E_ab"], g["E_ba"], g["D_a"], g["D_b"]
        T_ab, T_ba = g["T_ab"], g["T_ba"]

        z_b = E_ab(x_a)  # x_a's code in Z_B
        z_a = E_ba(x_b)  # x_b's code in Z_A
        terms: dict[str, Tensor] = {}

        with torch.set_grad_enabled(torch.is_grad_enabled() and w.gan > 0):
            fake_b, fake_a = D_b(z_b), D_a(z_a)
        if w.gan > 0:
            Q_a, Q_b = self.discriminators["Q_a"], self.discriminators["Q_b"]
            terms["gan"] = lsgan_generator_loss(Q_b(fake_b)) + lsgan_generator_loss(Q_a(fake_a))

        if w.identity > 0 or w.cross_translation > 0:
            e_ba_xa, e_ab_xb = E_ba(x_a), E_ab(x_b)  # each encoder fed its target domain
            if w.identity > 0:
                terms["identity"] = identity_loss(D_a(e_ba_xa), x_a, D_b(e_ab_xb), x_b)
            if w.cross_translation > 0:
                terms["cross_translation"] = latent_cross_translation_consistency_loss(
                    T_ab(e_ba_xa), z_b, T_ba(e_ab_xb), z_a
                )

        if w.cross_identity > 0 or w.latent_cycle > 0:
            z_a_hat, z_b_hat = T_ba(z_b), T_ab(z_a)  # cross-translated codes
            if w.cross_identity > 0:
                terms["cross_identity"] = latent_cross_identity_loss(D_a(z_a_hat), x_a, D_b(z_b_hat), x_b)
            if w.latent_cycle > 0:
                terms["latent_cycle"] = latent_cycle_consistency_loss(T_ab(z_a_hat), z_b, T_ba(z_b_hat), z_a)

        return StepOutput(loss=weighted_sum(terms, w), terms=terms, fakes={"a": fake_a, "b": fake_b})

    def sample_columns(self, x_a: Tensor, x_b: Tensor) -> dict[str, list[Tensor]]:
        g = self.generators
        z_b, z_a = g["E_ab"](x_a), g["E_ba"](x_b)
        return {
            "a": [x_a, g["D_b"](z_b), g["D_a"](g["T_ba"](z_b))],  # input | a->b | latent cross-identity
            "b": [x_b, g["D_a"](z_a), g["D_b"](g["T_ab"](z_a))],
        }
