"""The UNIT, XGAN and cascaded loss functions against hand computations on tiny tensors."""

import math

import pytest
import torch

from crossnet_dist import losses
from crossnet_dist.networks.xgan_nets import grad_reverse

A = torch.tensor([[1.0, -1.0], [0.5, 0.0]])
B = torch.tensor([[0.0, -1.0], [1.0, 2.0]])
C = torch.tensor([[2.0, 2.0], [2.0, 2.0]])
D = torch.tensor([[0.0, 0.0], [0.0, -2.0]])
L1_AB, L1_CD = 0.875, 2.5  # mean|A-B| = (1+0+0.5+2)/4, mean|C-D| = (2+2+2+4)/4
L2_AB, L2_CD = 1.3125, 7.0  # mean (A-B)^2 = (1+0+0.25+4)/4, mean (C-D)^2 = (4+4+4+16)/4


@pytest.mark.parametrize("fn", [
    losses.vae_reconstruction_loss,
    losses.unit_cycle_reconstruction_loss,
    losses.feature_cycle_loss,
    losses.feature_identity_loss,
])
def test_l1_pair_losses(fn):
    assert fn(A, B, C, D).item() == pytest.approx(L1_AB + L1_CD)
    assert fn(A, A, C, C).item() == 0.0


def test_vae_kl_loss_is_the_kl_averaged_over_latent_elements():
    mu = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    # KL(N(mu, I) || N(0, I)) = sum mu^2 / 2 = 7 over the 4 elements; averaged per element (the
    # normalisation of the L1 terms it is weighed against): 7 / 4
    assert losses.vae_kl_loss(mu).item() == pytest.approx(1.75)
    assert losses.vae_kl_loss(mu).item() * mu.numel() == pytest.approx(0.5 * (1 + 4 + 0 + 9))
    assert losses.vae_kl_loss(torch.zeros(3, 4)).item() == 0.0


def test_log_gan_losses():
    ln2, ln43 = math.log(2.0), math.log(4.0 / 3.0)
    logits = torch.tensor([0.0, math.log(3.0)])  # sigmoid: 1/2, 3/4
    assert losses.gan_generator_loss(logits).item() == pytest.approx((ln2 + ln43) / 2)  # -log D(G(z))
    # -log D(x) - log(1 - D(G(z))): real sigmoid(ln 3) = 3/4 -> ln(4/3); fake sigmoid(0) -> ln 2
    real, fake = torch.tensor([math.log(3.0)]), torch.tensor([0.0])
    assert losses.gan_discriminator_loss(real, fake).item() == pytest.approx(ln43 + ln2)


def test_xgan_reconstruction_is_the_l2_norm_of_each_images_error_not_squared():
    # rows are images of 2 elements: ||A-B|| per row = sqrt(1 + 0), sqrt(0.25 + 4); ||C-D|| = sqrt(8), sqrt(20);
    # each divided by sqrt(2 elements), then averaged over the 2 images
    expected = (math.sqrt(1 / 2) + math.sqrt(4.25 / 2)) / 2 + (math.sqrt(8 / 2) + math.sqrt(20 / 2)) / 2
    assert losses.xgan_reconstruction_loss(A, B, C, D).item() == pytest.approx(expected)
    doubled = losses.xgan_reconstruction_loss(2 * A, 2 * B, 2 * C, 2 * D).item()
    assert doubled == pytest.approx(2 * expected)  # a norm: twice the error, twice the loss (squared: 4x)


def test_inversion_reconstruction_is_mean_squared():
    assert losses.inversion_reconstruction_loss(A, B).item() == pytest.approx(L2_AB)


def test_domain_adversarial_loss_labels_domain_1_as_0_and_domain_2_as_1():
    l1, l2 = torch.tensor([0.0]), torch.tensor([math.log(3.0)])  # p(D_2): 1/2 and 3/4
    assert losses.domain_adversarial_loss(l1, l2).item() == pytest.approx(math.log(2.0) + math.log(4.0 / 3.0))
    # swapping the domains of confident logits makes it large
    assert losses.domain_adversarial_loss(torch.tensor([-9.0]), torch.tensor([9.0])).item() < 1e-3
    assert losses.domain_adversarial_loss(torch.tensor([9.0]), torch.tensor([-9.0])).item() > 17


def test_cosine_distances():
    u = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    v = torch.tensor([[0.0, 2.0], [3.0, 3.0]])  # orthogonal -> 1; 45 degrees -> 1 - 1/sqrt(2)
    expected = (1.0 + (1 - 1 / math.sqrt(2))) / 2
    assert losses.cosine_distance(u, v).item() == pytest.approx(expected)
    assert losses.teacher_loss(u, 5 * u).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert losses.semantic_consistency_loss(u, v, v, v).item() == pytest.approx(expected)


def test_wgan_losses():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    assert losses.wgan_generator_loss(fake).item() == pytest.approx(1.0)  # -mean(fake)
    assert losses.wgan_critic_loss(real, fake).item() == pytest.approx(-1.0 - 2.0)  # mean(fake) - mean(real)


def test_gradient_penalty_of_a_linear_critic():
    # D(y) = <w, y>: grad_y D = w everywhere, so the penalty is (|w| - 1)^2 for any interpolate.
    w = torch.tensor([3.0, 4.0], requires_grad=True)

    def critic(y):
        return (y * w).sum(dim=1)

    real, fake = torch.randn(5, 2), torch.randn(5, 2)
    gp = losses.gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2)
    gp.backward()  # the penalty trains the critic: d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|
    assert torch.allclose(w.grad, 2 * 4.0 * torch.tensor([3.0, 4.0]) / 5.0)
    unit = torch.tensor([0.6, 0.8])
    assert losses.gradient_penalty(lambda y: (y * unit).sum(1), real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_reversal_layer():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = grad_reverse(x)
    assert torch.equal(y, x)
    (3 * y).sum().backward()
    assert torch.equal(x.grad, torch.tensor([-3.0, -3.0]))
