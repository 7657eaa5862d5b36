"""Which modules each loss term trains, as the equations imply."""

import pytest
import torch

from crossnet_dist.image_pool import ImagePool
from crossnet_dist.methods import build_method
from crossnet_dist.training.step import set_requires_grad, train_step
from tests.helpers import has_grad, tiny_batches, tiny_config

CROSSNET_TERMS = ("gan", "identity", "cross_translation", "cross_identity", "latent_cycle")
EDS = {"E_ab", "D_b", "E_ba", "D_a"}
EXPECTED = {
    "gan": EDS,  # D_b(E_ab(x_a)) and D_a(E_ba(x_b)) through frozen Q's
    "identity": EDS,  # D_a(E_ba(x_a)), D_b(E_ab(x_b))
    "cross_translation": {"E_ab", "E_ba", "T_ab", "T_ba"},  # no decoder
    "cross_identity": EDS | {"T_ab", "T_ba"},
    "latent_cycle": {"E_ab", "E_ba", "T_ab", "T_ba"},  # no decoder
}


def modules_with_grad(container: torch.nn.ModuleDict) -> set[str]:
    return {name for name, module in container.items() if has_grad(module)}


@pytest.mark.parametrize("term", CROSSNET_TERMS)
def test_each_crossnet_term_reaches_exactly_its_modules(term):
    torch.manual_seed(0)
    only = [f"loss.crossnet.{t}={1.0 if t == term else 0.0}" for t in CROSSNET_TERMS]
    method = build_method(tiny_config(None, *only))
    batch = tiny_batches(1, batch_size=2)[0]
    set_requires_grad(method.discriminators, False)
    out = method.generator_step(batch["a"], batch["b"])
    assert set(out.terms) == {term}
    out.loss.backward()
    assert modules_with_grad(method.generators) == EXPECTED[term]
    assert modules_with_grad(method.discriminators) == set()


def test_cross_translation_single_direction_reaches_e_ba_t_ab_and_e_ab():
    from crossnet_dist.losses import latent_cross_translation_consistency_loss

    method = build_method(tiny_config())
    g = method.generators
    x_a = tiny_batches(1, batch_size=2)[0]["a"]
    z = torch.zeros(1)
    loss = latent_cross_translation_consistency_loss(g["T_ab"](g["E_ba"](x_a)), g["E_ab"](x_a), z, z)
    loss.backward()
    assert modules_with_grad(g) == {"E_ba", "T_ab", "E_ab"}


def test_cyclegan_cycle_term_reaches_all_generators_only():
    method = build_method(tiny_config(None, "method=cyclegan", "loss.cyclegan.gan=0", "loss.cyclegan.identity=0"))
    batch = tiny_batches(1, batch_size=2)[0]
    method.generator_step(batch["a"], batch["b"]).loss.backward()
    assert modules_with_grad(method.generators) == EDS
    assert modules_with_grad(method.discriminators) == set()


def test_discriminator_step_leaves_generators_untouched():
    torch.manual_seed(0)
    method = build_method(tiny_config())
    batch = tiny_batches(1, batch_size=2)[0]
    with torch.no_grad():
        fakes = method.generator_step(batch["a"], batch["b"]).fakes
    out = method.discriminator_step(batch["a"], batch["b"], fakes)
    out.loss.backward()
    assert modules_with_grad(method.generators) == set()
    assert modules_with_grad(method.discriminators) == {"Q_a", "Q_b"}


def test_train_step_updates_both_groups_and_leaves_discriminators_trainable():
    from crossnet_dist.training.optimizers import torch_optimizer_groups

    torch.manual_seed(0)
    cfg = tiny_config()
    method = build_method(cfg)
    g_opt, d_opt = torch_optimizer_groups(method, cfg.optim)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    batch = tiny_batches(1, batch_size=2)[0]
    metrics = train_step(method, batch["a"], batch["b"], g_opt, d_opt, {"a": ImagePool(50), "b": ImagePool(50)})
    changed = {k.split(".")[1] for k, v in method.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"E_ab", "E_ba", "D_a", "D_b", "T_ab", "T_ba", "Q_a", "Q_b"}
    assert all(p.requires_grad for p in method.discriminators.parameters())
    assert {"loss/G_total", "loss/D_total", "loss/D_a", "loss/D_b"} <= set(metrics)
