"""XGAN: Table 1 architecture and sharing, gradient reversal, which modules each loss trains,
the optional teacher, overfitting, serving."""

import pytest
import torch

from crossnet_dist.checkpoints.translator import load_translator
from crossnet_dist.config import ConfigError, load_config
from crossnet_dist.image_pool import ImagePool
from crossnet_dist.methods import build_method
from crossnet_dist.training.loop import Trainer
from crossnet_dist.training.optimizers import torch_optimizer_groups
from crossnet_dist.training.step import set_requires_grad, train_step
from tests.helpers import REPO, config_from, has_grad, tiny_batches

TERMS = ("rec", "dann", "sem", "gan")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: 1 thread is faster on 2 shared cores


def xgan_config(tmp_path=None, *overrides):
    return config_from(REPO / "jobs/configs/tiny_xgan.yaml", tmp_path, *overrides)


def parts_with_grad(method) -> set[str]:
    g = method.generators
    parts = {
        "e_1.private": g["e_1"].private, "e_2.private": g["e_2"].private, "e.shared": g["e_1"].shared,
        "d_1.private": g["d_1"].private, "d_2.private": g["d_2"].private, "d.shared": g["d_1"].shared,
        "c_dann": g["c_dann"], **dict(method.discriminators.items()),
    }
    return {n for n, m in parts.items() if has_grad(m)}


def test_paper_architecture_at_64x64():
    """Table 1: encoder 32x32x32, 16x16x64, (//) 8x8x128, (//) 4x4x256, (//) FC 1024 x2; decoder (//) 4x4x512,
    (//) 8x8x256, 16x16x128, 32x32x64, 64x64x3; discriminator 16, 32, 32, 32 channels then one logit."""
    cfg = load_config(REPO / "jobs/configs/xgan.yaml", ["train.progress=false"])
    method = build_method(cfg).eval()
    g = method.generators
    x = torch.zeros(2, 3, 64, 64)
    shapes, h = [], x
    for block in [*g["e_1"].private, *g["e_1"].shared.convs]:
        h = block(h)
        shapes.append(tuple(h.shape[1:]))
    assert shapes == [(32, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4)]
    e = g["e_1"](x)
    assert e.shape == (2, 1024)
    shapes, h = [], e[:, :, None, None]
    for block in [*g["d_1"].shared.deconvs, *g["d_1"].private]:
        h = block(h)
        shapes.append(tuple(h.shape[1:]))
    assert [s for s in shapes if len(s) == 3][-1] == (3, 64, 64)
    assert [m.out_channels for m in g["d_1"].modules() if isinstance(m, torch.nn.ConvTranspose2d)] == [512, 256, 128, 64, 3]
    disc = method.discriminators["D_b"]
    assert [m.out_channels for m in disc.convs.modules() if isinstance(m, torch.nn.Conv2d)] == [16, 32, 32, 32]
    assert disc(x).shape == (2, 1)
    assert set(method.discriminators) == {"D_b"}  # only D_1->2, as in the paper


def test_shared_blocks_and_unit_norm_embedding():
    method = build_method(xgan_config())
    g = method.generators
    assert g["e_1"].shared is g["e_2"].shared and g["d_1"].shared is g["d_2"].shared
    assert len(g["e_1"].shared.convs) == 2 and len(g["d_1"].shared.deconvs) == 2  # the two innermost blocks
    # shared weights, per-domain BatchNorm statistics
    assert not set(map(id, g["e_1"].shared_norms.modules())) & set(map(id, g["e_2"].shared_norms.modules()))
    assert not set(map(id, g["d_1"].shared_norms.modules())) & set(map(id, g["d_2"].shared_norms.modules()))
    assert not set(map(id, g["e_1"].private.parameters())) & set(map(id, g["e_2"].private.parameters()))
    assert "c_dann" in g  # trained by the generator optimiser, through gradient reversal
    e = g["e_1"](tiny_batches(1, batch_size=2)[0]["a"])
    assert torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)


def test_domain_classifier_is_trained_against_the_encoders():
    torch.manual_seed(0)
    method = build_method(xgan_config())
    g = method.generators
    batch = tiny_batches(1, batch_size=2)[0]
    from crossnet_dist.losses import domain_adversarial_loss

    grads = {}
    for reverse in (True, False):
        g.zero_grad(set_to_none=True)
        c = g["c_dann"]
        domain_adversarial_loss(c(g["e_1"](batch["a"]), reverse), c(g["e_2"](batch["b"]), reverse)).backward()
        grads[reverse] = ([p.grad.clone() for p in g["e_1"].parameters()], [p.grad.clone() for p in c.parameters()])
    for with_grl, without in zip(grads[True][0], grads[False][0]):  # encoders: the opposite direction
        assert torch.allclose(with_grl, -without, atol=1e-6)
    for with_grl, without in zip(grads[True][1], grads[False][1]):  # c_dann: unchanged (it minimises L_dann)
        assert torch.allclose(with_grl, without, atol=1e-6)


EXPECTED = {
    "rec": {"e_1.private", "e_2.private", "e.shared", "d_1.private", "d_2.private", "d.shared"},
    "dann": {"e_1.private", "e_2.private", "e.shared", "c_dann"},
    "sem": {"e_1.private", "e_2.private", "e.shared", "d_1.private", "d_2.private", "d.shared"},
    "gan": {"e_1.private", "e.shared", "d.shared", "d_2.private"},  # only g_1->2 is judged (D_1->2)
}


@pytest.mark.parametrize("term", TERMS)
def test_each_term_reaches_its_modules(term):
    torch.manual_seed(0)
    method = build_method(xgan_config(None, *[f"loss.xgan.{t}={1.0 if t == term else 0.0}" for t in TERMS]))
    batch = tiny_batches(1, batch_size=2)[0]
    set_requires_grad(method.discriminators, False)
    out = method.generator_step(batch["a"], batch["b"])
    assert set(out.terms) == {term}
    out.loss.backward()
    assert parts_with_grad(method) == EXPECTED[term]


def test_symmetric_gan_option_adds_d_a():
    torch.manual_seed(0)
    method = build_method(xgan_config(None, "model.xgan.gan_b2a=true"))
    assert set(method.discriminators) == {"D_a", "D_b"}
    batch = tiny_batches(1, batch_size=2)[0]
    out = method.generator_step(batch["a"], batch["b"])
    assert set(out.fakes) == {"a", "b"}
    method.discriminator_step(batch["a"], batch["b"], out.fakes).loss.backward()
    assert {"D_a", "D_b"} <= parts_with_grad(method)


def test_teacher_needs_its_width_and_trains_only_e_1():
    with pytest.raises(ConfigError, match="model.xgan.embedding_dim"):
        xgan_config(None, "loss.xgan.teach=1.0")
    torch.manual_seed(0)
    only = [f"loss.xgan.{t}=0.0" for t in TERMS]
    method = build_method(xgan_config(None, "loss.xgan.teach=1.0", "model.xgan.embedding_dim=1280", *only))
    assert method.teacher is not None and not any(p.requires_grad for p in method.teacher.parameters())
    batch = tiny_batches(1, batch_size=2)[0]
    out = method.generator_step(batch["a"], batch["b"])
    assert set(out.terms) == {"teach"} and 0 < out.terms["teach"].item() <= 2
    out.loss.backward()
    assert parts_with_grad(method) == {"e_1.private", "e.shared"}  # asymmetric: domain 1 only


def test_reconstruction_falls_when_overfitting_two_images():
    torch.manual_seed(0)
    cfg = xgan_config(None, "optim.lr=1e-3", "loss.xgan.dann=0", "loss.xgan.sem=0", "loss.xgan.gan=0")
    method = build_method(cfg)
    g_opt, d_opt = torch_optimizer_groups(method, cfg.optim)
    pools = {"a": ImagePool(0), "b": ImagePool(0)}
    batch = tiny_batches(1, batch_size=2)[0]
    rec = [float(train_step(method, batch["a"], batch["b"], g_opt, d_opt, pools)["loss/rec"]) for _ in range(200)]
    first, last = sum(rec[:10]) / 10, sum(rec[-10:]) / 10
    assert last < 0.2 * first, (first, last)  # L_rec alone: ~1.17 -> ~0.08 (RMS error per image)


def test_trainer_export_serves_both_directions(tmp_path):
    cfg = xgan_config(tmp_path, "train.max_steps=2")
    trainer = Trainer(cfg)
    trainer.fit(tiny_batches(2, batch_size=2))
    served, _ = load_translator(tmp_path / "run" / "generator.pt")
    assert "c_dann" not in served.generators and not len(served.discriminators)
    x = tiny_batches(1, batch_size=2)[0]
    trainer.method.eval()
    with torch.no_grad():
        for direction, key in (("a2b", "a"), ("b2a", "b")):
            out = served.translate(x[key], direction)
            assert out.shape == x[key].shape
            assert torch.allclose(out, trainer.method.translate(x[key], direction), atol=1e-6)
