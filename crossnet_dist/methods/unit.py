"""UNIT (Liu, Breuel, Kautz 2017): coupled VAE-GANs with a shared latent space.

Networks: encoders E_a, E_b (their last residual block(s) one shared module), generators G_a, G_b
(their first residual block(s) one shared module), discriminators D_a, D_b (PatchGANs).
Latent: q(z|x) = N(E_mu(x), I), sampled as z = E_mu(x) + eta, eta ~ N(0, I) (reparameterisation);
test-time translation uses the mean code, G_b(E_mu,a(x)).

Generator step, eq. 2 = VAE (eqs. 3-4) + GAN (eqs. 5-6) + CC (eqs. 7-8):
  lambda_1 KL(q_a) + lambda_2 |G_a(z_a) - x_a|                       (and b)
  lambda_0 GAN on the translation stream only: D_b(G_b(z_a)), D_a(G_a(z_b))
  lambda_3 [KL(q_a(z|x_a)) + KL(q_b(z|x_a->b))] + lambda_4 |G_a(z ~ q_b(z|x_a->b)) - x_a|  (and b)
Terms of weight 0 are not computed. The discriminator step is the unweighted log-loss of eqs. 5-6; it
comes first in each training step (sec. 3), on translations made for it by the current networks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from crossnet_dist.losses import (
    gan_discriminator_loss,
    gan_generator_loss,
    unit_cycle_reconstruction_loss,
    vae_kl_loss,
    vae_reconstruction_loss,
)
from crossnet_dist.methods.base import StepOutput, TranslationMethod, weighted_sum
from crossnet_dist.methods.options import METHOD_OPTIONS
from crossnet_dist.networks import PatchGAN
from crossnet_dist.networks.unit_nets import UNITEncoder, UNITGenerator, shared_blocks


def sample_z(mu: Tensor) -> Tensor:
    """z = mu + eta, eta ~ N(0, I): the reparameterised sample of q(z|x) = N(mu, I)."""
    return mu + torch.randn_like(mu)


class UNIT(TranslationMethod):
    name = "unit"
    options = METHOD_OPTIONS["unit"]  # its model.unit / loss.unit dataclasses and their checks
    translation_modules = ("E_a", "E_b", "G_a", "G_b")
    encoder_decoder = {"a2b": ("E_a", "G_b"), "b2a": ("E_b", "G_a")}  # F_a->b = G_b(E_mu,a(x)): mean code, no noise
    optim_defaults = {"lr": 1e-4, "beta1": 0.5, "beta2": 0.999, "pool_size": 0}  # sec. 4; no history pool
    # sec. 3: "we first apply a gradient ascent step to update D1 and D2 with E1, E2, G1, and G2 fixed.
    # We then apply a gradient descent step to update E1, E2, G1, and G2 with D1 and D2 fixed."
    discriminator_first = True

    def __init__(self, model_cfg, loss_cfg, inference: bool = False):
        super().__init__(model_cfg, loss_cfg, inference)
        e_shared, g_shared = shared_blocks(model_cfg), shared_blocks(model_cfg)
        g = self.generators
        g["E_a"], g["E_b"] = UNITEncoder(model_cfg, e_shared), UNITEncoder(model_cfg, e_shared)
        g["G_a"], g["G_b"] = UNITGenerator(model_cfg, g_shared), UNITGenerator(model_cfg, g_shared)
        if not inference:
            self.discriminators["D_a"] = PatchGAN(model_cfg)
            self.discriminators["D_b"] = PatchGAN(model_cfg)

    def generator_step(self, x_a: Tensor, x_b: Tensor) -> StepOutput:
        g, w = self.generators, self.weights
        E_a, E_b, G_a, G_b = g["E_a"], g["E_b"], g["G_a"], g["G_b"]
        mu_a, mu_b = E_a(x_a), E_b(x_b)
        z_a, z_b = sample_z(mu_a), sample_z(mu_b)
        terms: dict[str, Tensor] = {}

        if w.kl > 0:
            terms["kl"] = vae_kl_loss(mu_a) + vae_kl_loss(mu_b)
        if w.recon > 0:
            terms["recon"] = vae_reconstruction_loss(G_a(z_a), x_a, G_b(z_b), x_b)

        fake_b, fake_a = G_b(z_a), G_a(z_b)  # translation streams x_a->b, x_b->a
        if w.gan > 0:
            D_a, D_b = self.discriminators["D_a"], self.discriminators["D_b"]
            terms["gan"] = gan_generator_loss(D_b(fake_b)) + gan_generator_loss(D_a(fake_a))

        if w.cycle_kl > 0 or w.cycle_recon > 0:
            mu_ab, mu_ba = E_b(fake_b), E_a(fake_a)  # codes of the translated images
            if w.cycle_kl > 0:  # eqs. 7-8 each hold two KL terms
                terms["cycle_kl"] = vae_kl_loss(mu_a) + vae_kl_loss(mu_ab) + vae_kl_loss(mu_b) + vae_kl_loss(mu_ba)
            if w.cycle_recon > 0:
                terms["cycle_recon"] = unit_cycle_reconstruction_loss(
                    G_a(sample_z(mu_ab)), x_a, G_b(sample_z(mu_ba)), x_b
                )
        return StepOutput(loss=weighted_sum(terms, w), terms=terms, fakes={"a": fake_a, "b": fake_b})

    def discriminator_fakes(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        """The translation streams of the current encoders and generators, as the G step makes them."""
        g = self.generators
        return {"b": g["G_b"](sample_z(g["E_a"](x_a))), "a": g["G_a"](sample_z(g["E_b"](x_b)))}

    def discriminator_step(self, x_a: Tensor, x_b: Tensor, fakes: dict[str, Tensor]) -> StepOutput:
        D_a, D_b = self.discriminators["D_a"], self.discriminators["D_b"]
        d_a = gan_discriminator_loss(D_a(x_a), D_a(fakes["a"].detach()))
        d_b = gan_discriminator_loss(D_b(x_b), D_b(fakes["b"].detach()))
        return StepOutput(loss=d_a + d_b, terms={"D_a": d_a, "D_b": d_b})

    def sample_columns(self, x_a: Tensor, x_b: Tensor) -> dict[str, list[Tensor]]:
        g = self.generators
        mu_a, mu_b = g["E_a"](x_a), g["E_b"](x_b)
        return {  # input | translation | VAE reconstruction (mean codes)
            "a": [x_a, g["G_b"](mu_a), g["G_a"](mu_a)],
            "b": [x_b, g["G_a"](mu_b), g["G_b"](mu_b)],
        }
