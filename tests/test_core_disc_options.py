"""The PatchGAN's options beyond the papers: differentiable augmentation, spectral norm, the R1 penalty."""

from __future__ import annotations

import pytest
import torch

from crossnet_dist.config import ConfigError
from crossnet_dist.networks import PatchGAN
from crossnet_dist.networks.diff_augment import color, cutout, diff_augment, parse_policy, translation
from tests.helpers import tiny_config


def find_shift(out: torch.Tensor, x: torch.Tensor, limit: int) -> tuple[int, int] | None:
    """The (dy, dx) for which out[y, x] == x[y + dy, x + dx] inside and 0 outside, if any."""
    h, w = x.shape[-2:]
    for dy in range(-limit, limit + 1):
        for dx in range(-limit, limit + 1):
            expected = torch.zeros_like(x)
            ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
            src_y, src_x = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
            expected[..., ys, xs] = x[..., src_y, src_x]
            if torch.equal(out, expected):
                return dy, dx
    return None


def test_translation_shifts_each_image_by_at_most_an_eighth_with_zero_fill():
    torch.manual_seed(0)
    x = torch.arange(1, 4 * 3 * 16 * 16 + 1, dtype=torch.float).view(4, 3, 16, 16)
    out = translation(x)
    shifts = [find_shift(out[i], x[i], 2) for i in range(4)]
    assert None not in shifts and len(set(shifts)) > 1  # per-image shifts within 16 / 8 = 2 px


def test_cutout_zeroes_one_square_of_half_the_side_at_most():
    torch.manual_seed(0)
    out = cutout(torch.ones(64, 3, 16, 16))
    for image in out:
        zero = (image[0] == 0).nonzero()
        rows, cols = zero[:, 0], zero[:, 1]
        height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert height <= 8 and width <= 8 and len(zero) == height * width  # one (edge-clipped) square
        assert (image[:, rows, cols] == 0).all()


def test_every_augmentation_passes_gradients_to_the_generator():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    diff_augment(x, ("color", "translation", "cutout")).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not torch.equal(color(x.detach()), x.detach())


def test_unknown_policy_names_the_choices():
    assert parse_policy(" translation, cutout ") == ("translation", "cutout") and parse_policy("") == ()
    with pytest.raises(ValueError, match="expected a comma-separated subset of color, translation, cutout"):
        parse_policy("translation,blur")


def test_augmenting_patchgan_augments_in_training_only():
    model = tiny_config(None, "model.disc_augment=translation,cutout").model
    d = PatchGAN(model)
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(1)
    first = d(x)
    assert not torch.equal(first, d(x))  # each call draws new transforms
    d.eval()
    assert torch.equal(d(x), d(x))


def test_spectral_patchgan_has_unit_spectral_norm_and_no_instance_norm():
    from crossnet_dist.methods import build_method

    cfg = tiny_config(None, "model.disc_norm=spectral")
    d = build_method(cfg).discriminators["Q_a"]  # initialised as the method does it
    assert not [m for m in d.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    for _ in range(20):  # power iterations run in training forwards
        d(torch.randn(2, 3, 32, 32))
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert float(sigma) == pytest.approx(1.0, abs=0.05)
    original = convs[0].parametrizations.weight.original
    assert float(original.detach().std()) == pytest.approx(0.02, rel=0.3)  # model.init=normal reached the parameter


@pytest.mark.parametrize("method", ["crossnet", "cyclegan"])
def test_r1_adds_gamma_times_the_penalty_at_the_real_images(method):
    from crossnet_dist.losses import lsgan_discriminator_loss, r1_penalty
    from crossnet_dist.methods import build_method
    from tests.helpers import tiny_batches

    torch.manual_seed(0)
    m = build_method(tiny_config(None, f"method={method}", "model.disc_r1=10"))
    batch = tiny_batches(1, batch_size=2)[0]
    fakes = {"a": torch.rand_like(batch["a"]) * 2 - 1, "b": torch.rand_like(batch["b"]) * 2 - 1}
    out = m.discriminator_step(batch["a"], batch["b"], fakes)
    terms = {k: float(v.detach()) for k, v in out.terms.items()}
    expected = {}
    for dom, q in (("a", m.discriminators["Q_a"]), ("b", m.discriminators["Q_b"])):
        real = batch[dom].clone().requires_grad_(True)
        scores = q(real)
        expected[dom] = (lsgan_discriminator_loss(scores, q(fakes[dom])), r1_penalty(scores, real))
    r1 = expected["a"][1] + expected["b"][1]
    assert terms["R1"] == pytest.approx(float(r1.detach()), rel=1e-5) and float(r1.detach()) > 0
    d_sum = expected["a"][0] + expected["b"][0]
    assert float(out.loss.detach()) == pytest.approx(float((d_sum + 10 * r1).detach()), rel=1e-5)
    assert not batch["a"].requires_grad  # the caller's batch is left alone


def test_lazy_r1_penalises_every_kth_step_with_k_times_gamma():
    from crossnet_dist.methods import build_method
    from tests.helpers import tiny_batches

    torch.manual_seed(0)
    m = build_method(tiny_config(None, "method=cyclegan", "model.disc_r1=2", "model.disc_r1_every=3"))
    batch = tiny_batches(1, batch_size=2)[0]
    fakes = {"a": torch.zeros_like(batch["a"]), "b": torch.zeros_like(batch["b"])}
    outs = [m.discriminator_step(batch["a"], batch["b"], fakes) for _ in range(6)]
    assert ["R1" in o.terms for o in outs] == [True, False, False, True, False, False]
    first = outs[0]
    r1 = float(first.terms["R1"].detach()) / 3  # logged x 3
    d = float((first.terms["D_a"] + first.terms["D_b"]).detach())
    assert float(first.loss.detach()) == pytest.approx(d + 3 * 2 * r1, rel=1e-5)


@pytest.mark.parametrize("override, key", [("model.disc_norm=batch", "model.disc_norm"),
                                           ("model.disc_augment=flip", "model.disc_augment"),
                                           ("model.disc_r1=-1", "model.disc_r1"),
                                           ("model.disc_r1_every=0", "model.disc_r1_every"),
                                           ("method=unit,model.disc_r1=1", "model.disc_r1")])
def test_bad_discriminator_options_fail_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        tiny_config(None, *override.split(","))
