"""UNIT: tied layers, which modules each loss trains, the eq. 2 total, overfitting, serving."""

import pytest
import torch

from crossnet_dist.checkpoints.translator import load_translator
from crossnet_dist.image_pool import ImagePool
from crossnet_dist.methods import build_method
from crossnet_dist.methods.unit import sample_z
from crossnet_dist.training.loop import Trainer
from crossnet_dist.training.optimizers import TorchOptimizerGroup, torch_optimizer_groups
from crossnet_dist.training.step import set_requires_grad, train_step
from tests.helpers import REPO, config_from, has_grad, tiny_batches

TERMS = ("gan", "kl", "recon", "cycle_kl", "cycle_recon")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: 1 thread is faster on 2 shared cores


def unit_config(tmp_path=None, *overrides):
    return config_from(REPO / "jobs/configs/tiny_unit.yaml", tmp_path, *overrides)


def parts_with_grad(method) -> set[str]:
    g = method.generators
    parts = {
        "E_a.private": g["E_a"].private, "E_b.private": g["E_b"].private, "E.shared": g["E_a"].shared,
        "G_a.private": g["G_a"].private, "G_b.private": g["G_b"].private, "G.shared": g["G_a"].shared,
    }
    parts.update(method.discriminators.items())
    return {n for n, m in parts.items() if has_grad(m)}


def test_tied_layers_are_one_set_of_tensors():
    method = build_method(unit_config())
    g = method.generators
    assert g["E_a"].shared is g["E_b"].shared and g["G_a"].shared is g["G_b"].shared
    assert len(g["E_a"].shared) == 1  # model.unit.shared_layers, the paper's 1
    for p_a, p_b in zip(g["E_a"].shared.parameters(), g["E_b"].shared.parameters()):
        assert p_a is p_b
    assert not set(map(id, g["E_a"].private.parameters())) & set(map(id, g["E_b"].private.parameters()))
    # the generator optimiser sees each tied tensor once
    naive = sum(1 for name in g for _ in g[name].parameters())
    tied = len(list(g["E_a"].shared.parameters())) + len(list(g["G_a"].shared.parameters()))
    assert tied > 0 and len(list(g.parameters())) == naive - tied


def test_shared_layers_count_comes_from_config():
    method = build_method(unit_config(None, "model.unit.shared_layers=2"))
    assert len(method.generators["E_a"].shared) == 2 and len(method.generators["E_a"].private) > 0
    assert len(build_method(unit_config(None, "model.unit.shared_layers=0")).generators["G_b"].shared) == 0


def test_tied_layers_get_gradient_from_each_domain_alone():
    torch.manual_seed(0)
    method = build_method(unit_config())
    g = method.generators
    batch = tiny_batches(1, batch_size=2)[0]
    for domain, E, G in (("a", g["E_a"], g["G_a"]), ("b", g["E_b"], g["G_b"])):
        g.zero_grad(set_to_none=True)
        x = batch[domain]
        (G(sample_z(E(x))) - x).abs().mean().backward()  # this domain's VAE only
        for p in list(g["E_a"].shared.parameters()) + list(g["G_a"].shared.parameters()):
            assert p.grad is not None and p.grad.abs().sum() > 0
        other = g["E_b" if domain == "a" else "E_a"].private
        assert all(p.grad is None for p in other.parameters())


@pytest.mark.parametrize("term", TERMS)
def test_each_term_reaches_its_modules(term):
    torch.manual_seed(0)
    method = build_method(unit_config(None, *[f"loss.unit.{t}={1.0 if t == term else 0.0}" for t in TERMS]))
    batch = tiny_batches(1, batch_size=2)[0]
    set_requires_grad(method.discriminators, False)
    out = method.generator_step(batch["a"], batch["b"])
    assert set(out.terms) == {term}
    out.loss.backward()
    everything = {"E_a.private", "E_b.private", "E.shared", "G_a.private", "G_b.private", "G.shared"}
    expected = {"E_a.private", "E_b.private", "E.shared"} if term == "kl" else everything  # KL: encoders only
    assert parts_with_grad(method) == expected


def test_gan_term_judges_only_the_translation_streams():
    torch.manual_seed(0)
    method = build_method(unit_config())
    batch = tiny_batches(1, batch_size=2)[0]
    out = method.generator_step(batch["a"], batch["b"])
    g = method.generators
    with torch.no_grad():  # fakes are G_b(E_a(x_a) + noise), G_a(E_b(x_b) + noise): not reconstructions
        assert out.fakes["b"].shape == batch["a"].shape
        assert (out.fakes["b"] - g["G_b"](g["E_a"](batch["a"]))).abs().mean() < 1.0


def test_total_is_eq2_with_the_paper_weights():
    torch.manual_seed(0)
    cfg = unit_config()
    assert dict(cfg.loss.unit) == {"gan": 10.0, "kl": 0.1, "recon": 100.0, "cycle_kl": 0.1, "cycle_recon": 100.0}
    method = build_method(cfg)
    batch = tiny_batches(1, batch_size=2)[0]
    out = method.generator_step(batch["a"], batch["b"])
    t = out.terms
    expected = 10 * t["gan"] + 0.1 * t["kl"] + 100 * t["recon"] + 0.1 * t["cycle_kl"] + 100 * t["cycle_recon"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_latent_sample_is_mu_plus_standard_normal_and_translation_uses_the_mean():
    torch.manual_seed(0)
    z = sample_z(torch.full((20000,), 3.0))
    assert abs(z.mean().item() - 3.0) < 0.05 and abs(z.std().item() - 1.0) < 0.05
    method = build_method(unit_config()).eval()
    x = tiny_batches(1, batch_size=2)[0]["a"]
    with torch.no_grad():
        g = method.generators
        assert torch.equal(method.translate(x, "a2b"), method.translate(x, "a2b"))
        assert torch.equal(method.translate(x, "a2b"), g["G_b"](g["E_a"](x)))


def test_discriminator_step_trains_only_discriminators():
    torch.manual_seed(0)
    method = build_method(unit_config())
    batch = tiny_batches(1, batch_size=2)[0]
    with torch.no_grad():
        fakes = method.generator_step(batch["a"], batch["b"]).fakes
    method.discriminator_step(batch["a"], batch["b"], fakes).loss.backward()
    assert parts_with_grad(method) == {"D_a", "D_b"}


def test_a_step_updates_the_discriminators_first_on_translations_of_the_current_networks():
    torch.manual_seed(0)
    cfg = unit_config()
    method = build_method(cfg)
    order = []

    class Logged(TorchOptimizerGroup):
        def backward_step(self, loss, name=None):
            order.append(self.name)
            super().backward_step(loss)

    g_opt = Logged(method.generators.parameters(), cfg.optim, "generators")
    d_opt = Logged(method.discriminators.parameters(), cfg.optim, "discriminators")
    g_opt.name, d_opt.name = "G", "D"
    batch = tiny_batches(1, batch_size=2)[0]
    torch.manual_seed(1)
    expected = method.discriminator_fakes(batch["a"], batch["b"])["b"]
    seen = []
    inner = method.discriminator_step
    method.discriminator_step = lambda x_a, x_b, fakes: seen.append(fakes["b"]) or inner(x_a, x_b, fakes)
    torch.manual_seed(1)  # the same latent noise as `expected`
    train_step(method, batch["a"], batch["b"], g_opt, d_opt, {"a": ImagePool(0), "b": ImagePool(0)})
    assert order == ["D", "G"]  # sec. 3: D1, D2 first, then E1, E2, G1, G2
    assert torch.allclose(seen[0], expected) and not seen[0].requires_grad


def test_vae_reconstruction_falls_when_overfitting_two_images():
    torch.manual_seed(0)
    cfg = unit_config(None, "optim.lr=1e-3")
    method = build_method(cfg)
    g_opt, d_opt = torch_optimizer_groups(method, cfg.optim)
    pools = {"a": ImagePool(0), "b": ImagePool(0)}
    batch = tiny_batches(1, batch_size=2)[0]
    recon = [float(train_step(method, batch["a"], batch["b"], g_opt, d_opt, pools)["loss/recon"]) for _ in range(80)]
    first, last = sum(recon[:10]) / 10, sum(recon[-10:]) / 10
    assert last < 0.5 * first, (first, last)


def test_trainer_export_serves_both_directions(tmp_path):
    cfg = unit_config(tmp_path, "train.max_steps=2")
    trainer = Trainer(cfg)
    trainer.fit(tiny_batches(2, batch_size=2))
    served, served_cfg = load_translator(tmp_path / "run" / "generator.pt")
    assert served_cfg.method == "unit" and not len(served.discriminators)
    assert served.generators["E_a"].shared is served.generators["E_b"].shared
    x = tiny_batches(1, batch_size=2)[0]
    trainer.method.eval()
    with torch.no_grad():
        for direction, key in (("a2b", "a"), ("b2a", "b")):
            out = served.translate(x[key], direction)
            assert out.shape == x[key].shape and out.abs().max() <= 1
            assert torch.equal(out, trainer.method.translate(x[key], direction))
