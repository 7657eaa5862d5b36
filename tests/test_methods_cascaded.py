"""Cascaded deep translation: VGG-19 loading and layers, feature statistics, Tables 3-5 shapes, which
modules each stage trains, WGAN-GP critic steps, overfitting the deepest level, stage chaining, serving.

Every test loads a RANDOMLY INITIALISED VGG-19 of the real shape from a file in torchvision's format
(tests/helpers.py:random_vgg19_file): the pretrained weights cannot be downloaded here, so translation
quality is not tested.
"""

import pytest
import torch

from crossnet_dist.checkpoints.translator import load_translator
from crossnet_dist.image_pool import ImagePool
from crossnet_dist.methods import build_method
from crossnet_dist.methods.cascaded import CascadedError
from crossnet_dist.networks.cascaded_nets import ConditionalTranslator, DeepestTranslator
from crossnet_dist.networks.vgg import VGG19Features, VGGWeightsError
from crossnet_dist.training.loop import Trainer
from crossnet_dist.training.optimizers import TorchOptimizerGroup
from crossnet_dist.training.step import set_requires_grad, train_step
from tests.helpers import REPO, cascaded_test_overrides, config_from, has_grad, tiny_batches

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: 1 thread is faster on 2 shared cores


def cascaded_config(tmp_path=None, *overrides):
    return config_from(REPO / "jobs/configs/tiny_cascaded.yaml", tmp_path, *cascaded_test_overrides(), *overrides)


def modules_with_grad(container) -> set[str]:
    return {n for n, m in container.items() if has_grad(m)}


def test_vgg_reads_torchvision_vgg19_files_and_conv_i_1(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    reference = make_layers(cfgs["E"])  # torchvision's vgg19().features, randomly initialised
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in reference.state_dict().items()} | {"classifier.0.bias": torch.zeros(4)}, path)
    vgg = VGG19Features()
    vgg.load_torchvision_weights(path)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    feats = vgg(x)
    assert {i: tuple(f.shape[1:]) for i, f in feats.items()} == {
        1: (64, 32, 32), 2: (128, 16, 16), 3: (256, 8, 8), 4: (512, 4, 4), 5: (512, 2, 2)
    }
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(feats[3], reference[:11](((x + 1) / 2 - mean) / std), atol=1e-5)  # conv3_1 = features[10]
    assert not any(p.requires_grad for p in vgg.parameters())


def test_missing_vgg_weights_name_the_key_and_path(tmp_path):
    missing = tmp_path / "nowhere" / "vgg19-dcbb9e9d.pth"
    with pytest.raises(VGGWeightsError, match=f"model.cascaded.vgg_weights.*{missing}"):
        build_method(cascaded_config(None, f"model.cascaded.vgg_weights={missing}"))
    with pytest.raises(VGGWeightsError, match="model.cascaded.vgg_weights"):
        build_method(config_from(REPO / "jobs/configs/tiny_cascaded.yaml", None))  # none given
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(VGGWeightsError, match="not a torchvision vgg19 state dict"):
        build_method(cascaded_config(None, f"model.cascaded.vgg_weights={bad}"))


def test_table3_and_tables45_shapes():
    deepest = DeepestTranslator(cap=16)
    for side in (14, 2):  # conv5_1 at 224x224 and at 32x32; one image at a time too (serving)
        assert deepest(torch.randn(1, 512, side, side)).shape == (1, 512, side, side)
    g4 = ConditionalTranslator(4, cap=16, hidden=32, image_size=32)
    a4, b5 = torch.randn(2, 512, 4, 4), torch.rand(2, 512, 2, 2) * 2 - 1
    out = g4(a4, b5)
    assert out.shape == (2, 512, 4, 4) and out.abs().max() <= 1
    assert len(g4.adain.convs) == 2 * 3  # Table 4: 3 stride-2 convs (+ LReLU) at level 4
    paper = ConditionalTranslator(4, cap=512, hidden=8, image_size=224).adain
    assert paper.size == 4 and paper.mlp[0].in_features == 4 * 4 * 512  # 28x28 -> 4x4x512 -> linear, as Table 4
    assert ConditionalTranslator(3, cap=16, hidden=32, image_size=32)(
        torch.randn(2, 256, 8, 8), b5.new_zeros(2, 512, 4, 4)
    ).shape == (2, 256, 8, 8)
    with torch.no_grad():  # the current-level map steers the output through AdaIN; the deeper map is the content
        assert not torch.allclose(g4(a4, b5), g4(torch.randn(2, 512, 4, 4), b5))
        assert not torch.allclose(g4(a4, b5), g4(a4, -b5))


def test_feature_statistics_normalise_per_domain_and_then_freeze():
    torch.manual_seed(0)
    method = build_method(cascaded_config(None, "model.cascaded.stats_batches=2"))
    stats = method.generators["stats"]
    batches = tiny_batches(3, batch_size=2)
    for batch in batches:
        method._real_features(batch["a"], batch["b"])
    assert int(stats.batches) == 2  # frozen after stats_batches
    assert not torch.equal(stats.mean_A5, stats.mean_B5)
    f_a, _ = method._real_features(batches[0]["a"], batches[0]["b"])
    for i in (5, 4, 3):
        assert f_a[i].abs().max() <= 1.0 and f_a[i].std() > 0.1  # normalised, clamped, not degenerate


@pytest.mark.parametrize("level, trained", [
    (5, {"G5_A", "G5_B"}), (4, {"G4_A", "G4_B"}), (0, {f"Inv{i}_{d}" for i in (5, 4, 3) for d in "AB"}),
])
def test_each_stage_trains_only_its_modules(level, trained):
    torch.manual_seed(0)
    method = build_method(cascaded_config(None, f"model.cascaded.train_level={level}"))
    assert {n for n, m in method.generators.items() if any(p.requires_grad for p in m.parameters())} == trained
    batch = tiny_batches(1, batch_size=2)[0]
    set_requires_grad(method.discriminators, False)
    out = method.generator_step(batch["a"], batch["b"])
    assert set(out.terms) == ({"inv_pixel", "inv_gan"} if level == 0 else {"adv", "cycle", "identity"})
    out.loss.backward()
    assert modules_with_grad(method.generators) == trained
    assert modules_with_grad(method.discriminators) == set()
    set_requires_grad(method.discriminators, True)
    method.generators.zero_grad(set_to_none=True)
    method.discriminator_step(batch["a"], batch["b"], out.fakes).loss.backward()
    assert modules_with_grad(method.discriminators) == set(method.discriminators)
    assert modules_with_grad(method.generators) == set()


def test_translator_total_is_eq4_and_critic_loss_is_eq1():
    torch.manual_seed(0)
    cfg = cascaded_config()
    assert (cfg.loss.cascaded.cycle, cfg.loss.cascaded.identity, cfg.loss.cascaded.gp) == (100.0, 100.0, 10.0)
    method = build_method(cfg)
    batch = tiny_batches(1, batch_size=2)[0]
    out = method.generator_step(batch["a"], batch["b"])
    t = out.terms
    assert out.loss.item() == pytest.approx((t["adv"] + 100 * t["cycle"] + 100 * t["identity"]).item(), rel=1e-5)
    d = method.discriminator_step(batch["a"], batch["b"], out.fakes)
    assert d.loss.item() == pytest.approx((d.terms["D_A"] + d.terms["D_B"] + 10 * d.terms["gp"]).item(), rel=1e-5)


class Counting:
    def __init__(self, inner, name, log):
        self.inner, self.name, self.log = inner, name, log

    def backward_step(self, loss):
        self.log.append(self.name)
        self.inner.backward_step(loss)


def _counted_step(level: int, n_batches: int):
    torch.manual_seed(0)
    cfg = cascaded_config(None, f"model.cascaded.train_level={level}")
    method = build_method(cfg)
    order, seen = [], []
    g_opt = Counting(TorchOptimizerGroup(method.generators.parameters(), cfg.optim, "generators"), "G", order)
    d_opt = Counting(TorchOptimizerGroup(method.discriminators.parameters(), cfg.optim, "discriminators"), "D", order)
    inner_d_step = method.discriminator_step
    method.discriminator_step = lambda x_a, x_b, fakes: seen.append((x_a, fakes["b"])) or inner_d_step(x_a, x_b, fakes)
    pairs = [(b["a"], b["b"]) for b in tiny_batches(n_batches, batch_size=2)]
    train_step(method, *pairs[-1], g_opt, d_opt, {"a": ImagePool(0), "b": ImagePool(0)}, critic_batches=pairs[:-1])
    return method, order, seen, pairs


def test_wgan_gp_critic_updates_come_first_each_on_fresh_reals_and_fakes():
    method, order, seen, pairs = _counted_step(5, 4)
    assert method.critic_steps == 4 and method.batches_per_step == 4
    assert order == ["D", "D", "D", "D", "G"]  # Algorithm 1 of WGAN-GP
    assert [x_a for x_a, _ in seen] == [a for a, _ in pairs]  # a batch of its own per critic update
    fakes = [f for _, f in seen]
    assert all(not torch.equal(fakes[i], fakes[j]) for i in range(4) for j in range(i))


def test_the_inversion_stage_updates_the_generators_first_once():
    method, order, _, _ = _counted_step(0, 1)
    assert (method.critic_steps, method.batches_per_step, order) == (1, 1, ["G", "D"])


def test_a_step_of_the_trainer_consumes_one_batch_per_critic_update(tmp_path):
    trainer = Trainer(cascaded_config(tmp_path, "train.max_steps=2"))
    trainer.fit(tiny_batches(8, batch_size=2))
    assert (trainer.step, trainer.epoch_step) == (2, 8)


def test_deepest_level_cycle_and_identity_fall_when_overfitting():
    torch.manual_seed(0)
    cfg = cascaded_config(None, "optim.lr=1e-3", "loss.cascaded.adv=0")
    method = build_method(cfg)
    g_opt = TorchOptimizerGroup(method.generators.parameters(), cfg.optim, "generators")
    batch = tiny_batches(1, batch_size=2)[0]
    history = []
    for _ in range(100):  # translator updates only (the adversarial term is off)
        out = method.generator_step(batch["a"], batch["b"])
        g_opt.backward_step(out.loss)
        history.append((out.terms["cycle"] + out.terms["identity"]).item())
    first, last = sum(history[:10]) / 10, sum(history[-10:]) / 10
    assert last < 0.5 * first, (first, last)


def test_stages_chain_through_init_from_and_the_export_serves_both_directions(tmp_path):
    torch.manual_seed(0)
    batches = tiny_batches(2, batch_size=2)
    level5 = Trainer(cascaded_config(tmp_path / "l5", "train.max_steps=2"))
    level5.fit(batches)
    export5 = tmp_path / "l5" / "run" / "generator.pt"

    cfg4 = cascaded_config(tmp_path / "l4", "train.max_steps=2", "model.cascaded.train_level=4",
                           f"model.cascaded.init_from={export5}")
    level4 = Trainer(cfg4)
    g4, g5 = level4.method.generators, level5.method.generators
    for name in ("vgg", "stats", "G5_A", "G5_B"):
        for k, v in g5[name].state_dict().items():
            assert torch.equal(v, g4[name].state_dict()[k]), (name, k)
    g5_before = {k: v.clone() for k, v in g4["G5_B"].state_dict().items()}
    mean_before = g4["stats"].mean_A5.clone()
    level4.fit(batches)
    assert all(torch.equal(v, g4["G5_B"].state_dict()[k]) for k, v in g5_before.items())  # deeper level fixed
    assert torch.equal(mean_before, g4["stats"].mean_A5)  # statistics fixed by the first stage
    assert g4["stats"].trained_steps.tolist()[4:6] == [2, 2]

    served, _ = load_translator(tmp_path / "l4" / "run" / "generator.pt")
    assert set(served.generators) == {"vgg", "stats", "G5_B", "G5_A", "G4_B", "G4_A", "G3_B", "G3_A", "Inv3_A", "Inv3_B"}
    x = tiny_batches(1, batch_size=2)[0]
    level4.method.eval()
    with torch.no_grad():
        for direction, key in (("a2b", "a"), ("b2a", "b")):
            out = served.translate(x[key], direction)
            assert out.shape == x[key].shape and out.abs().max() <= 1
            assert torch.allclose(out, level4.method.translate(x[key], direction), atol=1e-6)

    with pytest.raises(CascadedError, match="model.cascaded.init_from"):
        build_method(cascaded_config(None, f"model.cascaded.init_from={tmp_path / 'missing.pt'}"))
