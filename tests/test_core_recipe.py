"""Training-recipe options: the reference initialisation, resize+conv decoders, EMA weights."""

import pytest
import torch
from torch import nn

from crossnet_dist.checkpoints.files import load_checked
from crossnet_dist.checkpoints.translator import load_translator
from crossnet_dist.config import ConfigError
from crossnet_dist.methods import build_method
from crossnet_dist.networks import Decoder
from crossnet_dist.training.ema import TranslatorEMA
from crossnet_dist.training.loop import Trainer
from tests.helpers import tiny_batches, tiny_config


def _convs(method):
    return [m for m in method.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


@pytest.mark.parametrize("name", ["crossnet", "cyclegan"])
def test_default_init_is_the_reference_normal_002(name):
    method = build_method(tiny_config(None, f"method={name}"))
    weights = torch.cat([m.weight.detach().flatten() for m in _convs(method)])
    assert weights.mean().abs() < 2e-3 and weights.std() == pytest.approx(0.02, rel=0.05)
    assert all(float(m.bias.abs().max()) == 0.0 for m in _convs(method) if m.bias is not None)


def test_pytorch_init_keeps_torch_defaults():
    torch.manual_seed(0)
    method = build_method(tiny_config(None, "model.init=pytorch"))
    first = _convs(method)[0]  # 7x7 conv from 3 channels: kaiming-uniform bound 1/sqrt(147) ~ 0.082
    assert first.weight.std() > 0.03 and float(first.bias.abs().max()) > 0


def test_resize_upsampling_has_no_transposed_conv_and_the_same_shapes():
    cfg = tiny_config(None, "model.upsample=resize")
    dec, ref = Decoder(cfg.model), Decoder(tiny_config(None).model)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in dec.modules())
    z = torch.randn(2, 64, 8, 8)
    assert dec(z).shape == ref(z).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("override, key", [("model.upsample=bilinear", "model.upsample"), ("model.init=xavier", "model.init"),
                                           ("train.ema_decay=1.0", "train.ema_decay"),
                                           ("train.ema_decay=0.9 dist.zero_stage=3", "train.ema_decay")])
def test_bad_recipe_values_fail_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        tiny_config(None, *override.split())


def test_ema_update_is_the_warmed_up_lerp_by_hand():
    method = build_method(tiny_config(None), inference=True)
    ema = TranslatorEMA(method, decay=0.9)
    p = next(method.generators["E_ab"].parameters())
    start = p.detach().clone()
    with torch.no_grad():
        p.add_(1.0)
    ema.update()  # first update: decay min(0.9, 1/10) = 0.1
    assert torch.allclose(ema.shadow["E_ab." + next(iter(dict(method.generators["E_ab"].named_parameters())))],
                          0.1 * start + 0.9 * (start + 1.0))
    ema.updates = 1000
    assert ema.current_decay() == 0.9


def test_trainer_exports_the_ema_weights_and_eval_loads_them_from_a_training_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, "train.max_steps=4", "train.ema_decay=0.5", "train.log_every=2")
    trainer = Trainer(cfg)
    trainer.fit(tiny_batches(2))
    served = load_checked(trainer.out_dir / "generator.pt", "crossnet-dist/serving")
    assert served["ema"] is True
    averaged = trainer.ema.translation_state_dict()
    raw = trainer.method.translation_state_dict()
    name = next(iter(averaged["D_b"]))
    assert torch.equal(served["translation"]["D_b"][name], averaged["D_b"][name])
    assert not torch.equal(averaged["D_b"][name], raw["D_b"][name].cpu())
    method, _ = load_translator(trainer.out_dir / "checkpoints" / "step_00000004.pt")
    assert torch.equal(method.generators["D_b"].state_dict()[name], averaged["D_b"][name])


def test_resume_restores_the_ema(tmp_path):
    cfg = tiny_config(tmp_path, "train.max_steps=3", "train.ema_decay=0.5", "train.log_every=1")
    trainer = Trainer(cfg)
    trainer.fit(tiny_batches(2))
    again = Trainer(cfg)
    again.resume()
    assert again.ema.updates == 3
    for key, value in trainer.ema.shadow.items():
        assert torch.equal(again.ema.shadow[key], value)


def test_resuming_a_run_without_ema_starts_the_average_at_its_weights(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, "train.max_steps=2", "train.log_every=1"))
    trainer.fit(tiny_batches(2))
    again = Trainer(tiny_config(tmp_path, "train.max_steps=2", "train.ema_decay=0.9", "train.log_every=1"))
    again.resume()
    assert again.ema.updates == 0
    raw = again.method.translation_state_dict()
    for module, state in again.ema.translation_state_dict().items():
        for name, value in state.items():
            assert torch.equal(value, raw[module][name].cpu())
