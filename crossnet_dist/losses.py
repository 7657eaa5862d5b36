"""Loss terms, one function each, named after the paper term they implement.

Image and latent distances are mean absolute errors (the papers' L1 norms averaged over
elements, as the CycleGAN reference does). Each function takes already-computed network
outputs, so a method can share forward passes between terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def lsgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """Least-squares GAN, generator side (Mao et al.): E[(Q(G(x)) - 1)^2]."""
    return F.mse_loss(fake_scores, torch.ones_like(fake_scores))


def lsgan_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Least-squares GAN, discriminator side: 0.5 * (E[(Q(y) - 1)^2] + E[Q(G(x))^2])."""
    real = F.mse_loss(real_scores, torch.ones_like(real_scores))
    fake = F.mse_loss(fake_scores, torch.zeros_like(fake_scores))
    return 0.5 * (real + fake)


def identity_loss(a_through_ba: Tensor, x_a: Tensor, b_through_ab: Tensor, x_b: Tensor) -> Tensor:
    """CrossNet eq. 2, L_Id = |D_a(E_ba(x_a)) - x_a| + |D_b(E_ab(x_b)) - x_b|.

    The same term is CycleGAN's identity loss with G_BA = D_a o E_ba and G_AB = D_b o E_ab.
    """
    return F.l1_loss(a_through_ba, x_a) + F.l1_loss(b_through_ab, x_b)


def latent_cross_identity_loss(a_cross_rec: Tensor, x_a: Tensor, b_cross_rec: Tensor, x_b: Tensor) -> Tensor:
    """CrossNet eq. 1, L_ZId = |D_a(T_ba(E_ab(x_a))) - x_a| + |D_b(T_ab(E_ba(x_b))) - x_b|."""
    return F.l1_loss(a_cross_rec, x_a) + F.l1_loss(b_cross_rec, x_b)


def latent_cross_translation_consistency_loss(
    t_ab_of_e_ba_xa: Tensor, e_ab_xa: Tensor, t_ba_of_e_ab_xb: Tensor, e_ba_xb: Tensor
) -> Tensor:
    """CrossNet eq. 3, L_CTC = |T_ab(E_ba(x_a)) - E_ab(x_a)| + |T_ba(E_ab(x_b)) - E_ba(x_b)|.

    Both sides carry gradient: the paper regularises the encoders' latent spaces with it.
    """
    return F.l1_loss(t_ab_of_e_ba_xa, e_ab_xa) + F.l1_loss(t_ba_of_e_ab_xb, e_ba_xb)


def latent_cycle_consistency_loss(z_b_cycled: Tensor, z_b: Tensor, z_a_cycled: Tensor, z_a: Tensor) -> Tensor:
    """CrossNet eq. 4, L_ZCyc = |T_ab(T_ba(z_b)) - z_b| + |T_ba(T_ab(z_a)) - z_a|,
    with z_b = E_ab(x_a) and z_a = E_ba(x_b)."""
    return F.l1_loss(z_b_cycled, z_b) + F.l1_loss(z_a_cycled, z_a)


def image_cycle_consistency_loss(a_cycled: Tensor, x_a: Tensor, b_cycled: Tensor, x_b: Tensor) -> Tensor:
    """CycleGAN eq. 2, L_cyc = |F(G(x_a)) - x_a| + |G(F(x_b)) - x_b|."""
    return F.l1_loss(a_cycled, x_a) + F.l1_loss(b_cycled, x_b)
