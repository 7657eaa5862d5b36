"""Loss terms, one function each, named after the paper term they implement.

Image and latent distances are mean absolute errors (the papers' L1 norms averaged over
elements, as the CycleGAN reference does). Each function takes already-computed network
outputs, so a method can share forward passes between terms.

Every term is computed in float32 (`@fp32`), also when the networks ran under bf16 autocast
(`train.precision=bf16`): a mean over 10^5-10^6 elements or an LSGAN square keeps only 8 mantissa
bits in bf16, and the GAN losses' small differences are what trains.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor


def fp32(loss):
    """Casts a loss function's floating-point tensor arguments to float32 (a no-op on float32)."""

    @functools.wraps(loss)
    def in_fp32(*args, **kwargs):
        cast = lambda a: a.float() if isinstance(a, Tensor) and a.is_floating_point() else a  # noqa: E731
        return loss(*map(cast, args), **{k: cast(v) for k, v in kwargs.items()})

    return in_fp32


@fp32
def lsgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """Least-squares GAN, generator side (Mao et al.): E[(Q(G(x)) - 1)^2]."""
    return F.mse_loss(fake_scores, torch.ones_like(fake_scores))


@fp32
def lsgan_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Least-squares GAN, discriminator side: 0.5 * (E[(Q(y) - 1)^2] + E[Q(G(x))^2])."""
    real = F.mse_loss(real_scores, torch.ones_like(real_scores))
    fake = F.mse_loss(fake_scores, torch.zeros_like(fake_scores))
    return 0.5 * (real + fake)


@fp32
def identity_loss(a_through_ba: Tensor, x_a: Tensor, b_through_ab: Tensor, x_b: Tensor) -> Tensor:
    """CrossNet eq. 2, L_Id = |D_a(E_ba(x_a)) - x_a| + |D_b(E_ab(x_b)) - x_b|.

    The same term is CycleGAN's identity loss with G_BA = D_a o E_ba and G_AB = D_b o E_ab.
    """
    return F.l1_loss(a_through_ba, x_a) + F.l1_loss(b_through_ab, x_b)


@fp32
def latent_cross_identity_loss(a_cross_rec: Tensor, x_a: Tensor, b_cross_rec: Tensor, x_b: Tensor) -> Tensor:
    """CrossNet eq. 1, L_ZId = |D_a(T_ba(E_ab(x_a))) - x_a| + |D_b(T_ab(E_ba(x_b))) - x_b|."""
    return F.l1_loss(a_cross_rec, x_a) + F.l1_loss(b_cross_rec, x_b)


@fp32
def latent_cross_translation_consistency_loss(
    t_ab_of_e_ba_xa: Tensor, e_ab_xa: Tensor, t_ba_of_e_ab_xb: Tensor, e_ba_xb: Tensor
) -> Tensor:
    """CrossNet eq. 3, L_CTC = |T_ab(E_ba(x_a)) - E_ab(x_a)| + |T_ba(E_ab(x_b)) - E_ba(x_b)|.

    Both sides carry gradient: the paper regularises the encoders' latent spaces with it.
    """
    return F.l1_loss(t_ab_of_e_ba_xa, e_ab_xa) + F.l1_loss(t_ba_of_e_ab_xb, e_ba_xb)


@fp32
def latent_cycle_consistency_loss(z_b_cycled: Tensor, z_b: Tensor, z_a_cycled: Tensor, z_a: Tensor) -> Tensor:
    """CrossNet eq. 4, L_ZCyc = |T_ab(T_ba(z_b)) - z_b| + |T_ba(T_ab(z_a)) - z_a|,
    with z_b = E_ab(x_a) and z_a = E_ba(x_b)."""
    return F.l1_loss(z_b_cycled, z_b) + F.l1_loss(z_a_cycled, z_a)


@fp32
def image_cycle_consistency_loss(a_cycled: Tensor, x_a: Tensor, b_cycled: Tensor, x_b: Tensor) -> Tensor:
    """CycleGAN eq. 2, L_cyc = |F(G(x_a)) - x_a| + |G(F(x_b)) - x_b|."""
    return F.l1_loss(a_cycled, x_a) + F.l1_loss(b_cycled, x_b)


# ---- UNIT (Liu, Breuel, Kautz 2017) ------------------------------------------------------------


@fp32
def vae_kl_loss(mu: Tensor) -> Tensor:
    """UNIT eqs. 3-4 (and 7-8), KL(q(z|x) || p_eta(z)) with q = N(mu, I) and p_eta = N(0, I).

    For unit variances the KL is 0.5 * sum(mu^2) over the latent elements. The paper writes the KL
    without saying how it is normalised; here it is averaged over elements, 0.5 * mean(mu^2), like the
    L1 terms it is weighed against (also per element): the paper's lambda_1 = 0.1 against lambda_2 = 100
    only makes sense between terms of the same normalisation (a sum over a 64x64x256 code would weigh
    the KL 10^6 times more).
    """
    return 0.5 * mu.pow(2).mean()


@fp32
def vae_reconstruction_loss(a_rec: Tensor, x_a: Tensor, b_rec: Tensor, x_b: Tensor) -> Tensor:
    """UNIT eqs. 3-4, -E[log p_G(x|z)] with Laplacian p_G: |G_1(z_1) - x_1| + |G_2(z_2) - x_2|."""
    return F.l1_loss(a_rec, x_a) + F.l1_loss(b_rec, x_b)


@fp32
def unit_cycle_reconstruction_loss(a_cycled: Tensor, x_a: Tensor, b_cycled: Tensor, x_b: Tensor) -> Tensor:
    """UNIT eqs. 7-8, the likelihood term of the cycle-reconstruction stream:
    |G_1(z_2 ~ q_2(z_2|x_1->2)) - x_1| + |G_2(z_1 ~ q_1(z_1|x_2->1)) - x_2|."""
    return F.l1_loss(a_cycled, x_a) + F.l1_loss(b_cycled, x_b)


@fp32
def gan_generator_loss(fake_logits: Tensor) -> Tensor:
    """The generator side of the log-loss GAN of UNIT eqs. 5-6 and XGAN eq. 6, in the usual
    non-saturating form: -E[log D(G(z))] = BCE(D(G(z)) logits, 1)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


@fp32
def gan_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator side of UNIT eqs. 5-6 / XGAN eq. 6 (maximising log D(x) + log(1 - D(G(z)))):
    BCE(D(x), 1) + BCE(D(G(z)), 0)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


# ---- XGAN (Royer et al. 2017) ------------------------------------------------------------------


@fp32
def cosine_distance(u: Tensor, v: Tensor) -> Tensor:
    """Mean over the batch of 1 - cos(u, v): the distance XGAN uses for all embedding comparisons
    (appendix 7.1)."""
    return (1.0 - F.cosine_similarity(u.flatten(1), v.flatten(1), dim=1)).mean()


@fp32
def xgan_reconstruction_loss(a_rec: Tensor, x_a: Tensor, b_rec: Tensor, x_b: Tensor) -> Tensor:
    """XGAN eq. 2, L_rec = E_x ||x - d_1(e_1(x))||_2 (+ the same for D_2): the L2 norm of each image's
    error, not squared, averaged over the batch. Each norm is divided by sqrt(C*H*W) (the root mean
    square error per image): a constant factor, so the term keeps the paper's form while the unit
    weights of the other terms of eq. 1 mean the same at any image size."""
    return _per_image_rms(a_rec - x_a).mean() + _per_image_rms(b_rec - x_b).mean()


def _per_image_rms(error: Tensor) -> Tensor:
    return error.flatten(1).pow(2).mean(dim=1).sqrt()


@fp32
def domain_adversarial_loss(logits_1: Tensor, logits_2: Tensor) -> Tensor:
    """XGAN eq. 3, L_dann = E l(1, c_dann(e_1(x))) + E l(2, c_dann(e_2(x))) with l the binary
    cross-entropy: domain D_1 is label 0, D_2 label 1. c_dann minimises it; the encoders see it
    through a gradient reversal layer, i.e. they maximise it."""
    return F.binary_cross_entropy_with_logits(logits_1, torch.zeros_like(logits_1)) + F.binary_cross_entropy_with_logits(
        logits_2, torch.ones_like(logits_2)
    )


@fp32
def semantic_consistency_loss(e1_x: Tensor, e2_g12_x: Tensor, e2_y: Tensor, e1_g21_y: Tensor) -> Tensor:
    """XGAN eq. 4, L_sem = ||e_1(x) - e_2(g_1->2(x))|| + ||e_2(y) - e_1(g_2->1(y))||, with the cosine
    distance of appendix 7.1."""
    return cosine_distance(e1_x, e2_g12_x) + cosine_distance(e2_y, e1_g21_y)


@fp32
def teacher_loss(teacher_x: Tensor, e1_x: Tensor) -> Tensor:
    """XGAN sec. 3, L_teach = ||T(x) - e_1(x)|| for x in D_1 only (asymmetric), cosine distance."""
    return cosine_distance(teacher_x, e1_x)


@fp32
def r1_penalty(real_scores: Tensor, real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?", eq. 9) without
    its gamma: 0.5 * E_x[||grad_x D(x)||^2] over real images x. `real` must require grad and
    `real_scores` = D(real); the graph is kept (create_graph) so the penalty trains the discriminator."""
    (grad,) = torch.autograd.grad(real_scores.sum(), real, create_graph=True)
    return 0.5 * grad.pow(2).flatten(1).sum(1).mean()


# ---- Cascaded deep translation (VGG-19 feature pyramid, WGAN-GP) ------------------------------


@fp32
def wgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """Cascaded eq. 1, the translator's side of L_adv: -E[D_Y(G_Y(x))]."""
    return -fake_scores.mean()


@fp32
def wgan_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Cascaded eq. 1, the critic's side without the penalty: E[D_Y(G_Y(x))] - E[D_Y(y)]."""
    return fake_scores.mean() - real_scores.mean()


@fp32
def gradient_penalty(critic, real: Tensor, fake: Tensor) -> Tensor:
    """Cascaded eq. 1 (Gulrajani et al.), E_{y^ ~ P_y^}[(||grad D_Y(y^)||_2 - 1)^2] with y^ uniform on
    the segments between real and generated samples. Unweighted: the caller multiplies by lambda_gp.
    The graph is kept (create_graph) so the penalty trains the critic."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    y_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(y_hat)
    (grad,) = torch.autograd.grad(scores.sum(), y_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


@fp32
def feature_cycle_loss(a_cycled: Tensor, a: Tensor, b_cycled: Tensor, b: Tensor) -> Tensor:
    """Cascaded eq. 2 (L1), L_cyc = |G_A(G_B(a)) - a| + |G_B(G_A(b)) - b|; for a conditional level i
    the translators also take the deeper layer: |G_A^i(G_B^i(a_i, b~_i+1), a_i+1) - a_i| + ..."""
    return F.l1_loss(a_cycled, a) + F.l1_loss(b_cycled, b)


@fp32
def feature_identity_loss(a_through_a: Tensor, a: Tensor, b_through_b: Tensor, b: Tensor) -> Tensor:
    """Cascaded eq. 3 (L1), L_idty = |G_A(a) - a| + |G_B(b) - b| (conditional levels: G_A^i(a_i, a_i+1))."""
    return F.l1_loss(a_through_a, a) + F.l1_loss(b_through_b, b)


@fp32
def inversion_reconstruction_loss(x_rec: Tensor, x: Tensor) -> Tensor:
    """Cascaded appendix A.1.2 / Dosovitskiy & Brox 2016: the image-space loss of a feature inversion
    network, squared Euclidean averaged over elements: mean((I(phi(x)) - x)^2)."""
    return F.mse_loss(x_rec, x)
