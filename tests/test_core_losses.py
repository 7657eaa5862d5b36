"""Every loss against a hand computation on tiny tensors."""

import pytest
import torch

from crossnet_dist import losses

A = torch.tensor([[1.0, -1.0], [0.5, 0.0]])
B = torch.tensor([[0.0, -1.0], [1.0, 2.0]])
C = torch.tensor([[2.0, 2.0], [2.0, 2.0]])
D = torch.tensor([[0.0, 0.0], [0.0, -2.0]])
# hand: mean|A-B| = (1 + 0 + 0.5 + 2)/4 = 0.875 ; mean|C-D| = (2 + 2 + 2 + 4)/4 = 2.5
L1_AB, L1_CD = 0.875, 2.5


@pytest.mark.parametrize("fn", [
    losses.identity_loss,
    losses.latent_cross_identity_loss,
    losses.latent_cross_translation_consistency_loss,
    losses.latent_cycle_consistency_loss,
    losses.image_cycle_consistency_loss,
])
def test_l1_terms_are_the_sum_of_both_directions(fn):
    assert fn(A, B, C, D).item() == pytest.approx(L1_AB + L1_CD)
    assert fn(A, A, C, C).item() == 0.0


def test_l1_terms_argument_order_pairs_prediction_with_target():
    # |A - B| + |C - D|, not |A - C| + |B - D|: swap the pairs and the value changes.
    assert losses.identity_loss(A, C, B, D).item() == pytest.approx(
        (A - C).abs().mean().item() + (B - D).abs().mean().item()
    )


def test_lsgan_generator_loss():
    scores = torch.tensor([1.0, 0.0, 3.0, -1.0])
    # mean((s - 1)^2) = (0 + 1 + 4 + 4)/4
    assert losses.lsgan_generator_loss(scores).item() == pytest.approx(2.25)


def test_lsgan_discriminator_loss():
    real = torch.tensor([1.0, 0.0])  # mean((r-1)^2) = 0.5
    fake = torch.tensor([0.0, 2.0])  # mean(f^2) = 2
    assert losses.lsgan_discriminator_loss(real, fake).item() == pytest.approx(0.5 * (0.5 + 2.0))
    assert losses.lsgan_discriminator_loss(torch.ones(3), torch.zeros(3)).item() == 0.0


def test_r1_penalty_of_a_quadratic_critic():
    # D(x) = sum(w * x^2) per image: grad = 2 w x; image 1: |(2, 0)|^2 = 4, image 2: |(2, -4)|^2 = 20
    w = torch.tensor([1.0, 2.0])
    real = torch.tensor([[1.0, 0.0], [1.0, -1.0]], requires_grad=True)
    penalty = losses.r1_penalty((w * real**2).sum(1), real)
    assert penalty.item() == pytest.approx(0.5 * (4 + 20) / 2)
    penalty.backward()  # the graph is kept: the penalty itself has a gradient (d/dx 0.25 * sum 4 w^2 x^2)
    assert torch.allclose(real.grad, 0.5 * 8 * w**2 * real.detach() / 2)


def test_crossnet_total_is_the_weighted_sum_of_eq5():
    from crossnet_dist.methods import build_method
    from tests.helpers import tiny_batches, tiny_config

    torch.manual_seed(0)
    method = build_method(tiny_config())
    batch = tiny_batches(1, batch_size=2)[0]
    out = method.generator_step(batch["a"], batch["b"])
    assert set(out.terms) == {"gan", "identity", "cross_translation", "cross_identity", "latent_cycle"}
    w = {"gan": 1, "identity": 3, "cross_translation": 3, "cross_identity": 6, "latent_cycle": 6}
    expected = sum(w[k] * v for k, v in out.terms.items())
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_crossnet_terms_match_a_direct_evaluation_of_the_equations():
    from crossnet_dist.methods import build_method
    from tests.helpers import tiny_batches, tiny_config

    torch.manual_seed(0)
    method = build_method(tiny_config())
    g = method.generators
    x_a, x_b = (t for t in tiny_batches(1, batch_size=2)[0].values())
    with torch.no_grad():
        out = method.generator_step(x_a, x_b)
        l1 = lambda p, q: (p - q).abs().mean()  # noqa: E731
        eq1 = l1(g["D_a"](g["T_ba"](g["E_ab"](x_a))), x_a) + l1(g["D_b"](g["T_ab"](g["E_ba"](x_b))), x_b)
        eq2 = l1(g["D_a"](g["E_ba"](x_a)), x_a) + l1(g["D_b"](g["E_ab"](x_b)), x_b)
        eq3 = l1(g["T_ab"](g["E_ba"](x_a)), g["E_ab"](x_a)) + l1(g["T_ba"](g["E_ab"](x_b)), g["E_ba"](x_b))
        z_b, z_a = g["E_ab"](x_a), g["E_ba"](x_b)
        eq4 = l1(g["T_ab"](g["T_ba"](z_b)), z_b) + l1(g["T_ba"](g["T_ab"](z_a)), z_a)
    for name, value in (("cross_identity", eq1), ("identity", eq2), ("cross_translation", eq3), ("latent_cycle", eq4)):
        assert out.terms[name].item() == pytest.approx(value.item(), rel=1e-5), name


def test_cyclegan_identity_weight_is_relative_to_cycle():
    from crossnet_dist.methods import build_method
    from tests.helpers import tiny_batches, tiny_config

    torch.manual_seed(0)
    method = build_method(tiny_config(None, "method=cyclegan"))
    batch = tiny_batches(1, batch_size=2)[0]
    out = method.generator_step(batch["a"], batch["b"])
    t = out.terms
    assert out.loss.item() == pytest.approx((t["gan"] + 10 * t["cycle"] + 5 * t["identity"]).item(), rel=1e-6)


def test_zero_weight_terms_are_not_computed():
    from crossnet_dist.methods import build_method
    from tests.helpers import tiny_batches, tiny_config

    method = build_method(tiny_config(None, "loss.crossnet.cross_translation=0", "loss.crossnet.latent_cycle=0"))
    batch = tiny_batches(1, batch_size=2)[0]
    assert set(method.generator_step(batch["a"], batch["b"]).terms) == {"gan", "identity", "cross_identity"}


def test_all_zero_weights_is_an_error():
    from crossnet_dist.methods import build_method
    from tests.helpers import tiny_batches, tiny_config

    zeros = [f"loss.crossnet.{k}=0" for k in ("gan", "identity", "cross_translation", "cross_identity", "latent_cycle")]
    method = build_method(tiny_config(None, *zeros))
    batch = tiny_batches(1, batch_size=2)[0]
    with pytest.raises(ValueError, match="every loss weight is 0"):
        method.generator_step(batch["a"], batch["b"])
