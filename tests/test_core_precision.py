"""train.precision=bf16 is autocast: bf16 convolutions, float32 weights, gradients and loss terms;
train.channels_last puts weights and batches in NHWC. Both trainers take them from StepPrecision."""

import pytest
import torch

from crossnet_dist.config import ConfigError
from crossnet_dist.image_pool import ImagePool
from crossnet_dist.losses import identity_loss, lsgan_generator_loss
from crossnet_dist.methods import build_method
from crossnet_dist.training.optimizers import torch_optimizer_groups
from crossnet_dist.training.precision import StepPrecision
from crossnet_dist.training.step import train_step
from tests.helpers import tiny_batches, tiny_config


def test_a_loss_of_bf16_outputs_is_computed_in_float32():
    scores = torch.tensor([0.3, -0.7, 1.9], dtype=torch.bfloat16)
    expected = ((scores.float() - 1) ** 2).mean()  # E[(Q(G(x)) - 1)^2] in float32
    loss = lsgan_generator_loss(scores)
    assert loss.dtype == torch.float32 and torch.equal(loss, expected)
    a, x = torch.tensor([0.1, 0.2], dtype=torch.bfloat16), torch.tensor([0.3, 0.5])
    assert identity_loss(a, x, a, x).dtype == torch.float32


def test_a_bf16_step_convolves_in_bf16_and_keeps_weights_gradients_and_losses_in_float32():
    cfg = tiny_config(None)
    method = build_method(cfg)
    conv_dtypes = set()
    for module in method.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, i, out: conv_dtypes.add(out.dtype))
    g_opt, d_opt = torch_optimizer_groups(method, cfg.optim)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    (batch,) = tiny_batches(1, batch_size=2, size=cfg.model.image_size)
    pools = {"a": ImagePool(0), "b": ImagePool(0)}
    terms = train_step(method, batch["a"], batch["b"], g_opt, d_opt, pools, precision=StepPrecision(bf16=True))
    assert conv_dtypes == {torch.bfloat16}
    assert all(t.dtype == torch.float32 and torch.isfinite(t) for t in terms.values())
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in method.parameters() if p.grad is not None)
    assert any(not torch.equal(before[k], v) for k, v in method.state_dict().items())


def test_the_trainer_holds_channels_last_weights_and_steps_on_channels_last_batches(tmp_path):
    from crossnet_dist.training.loop import Trainer

    trainer = Trainer(tiny_config(tmp_path, "train.channels_last=true", "train.precision=fp32"))
    conv = next(m for m in trainer.method.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    (batch,) = tiny_batches(1, batch_size=2, size=trainer.cfg.model.image_size)
    assert trainer._to_device(batch["a"]).is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(t) for t in trainer.train_batch([batch]).values())


def test_precision_auto_is_fp32_on_a_cpu_and_an_unknown_precision_names_its_key():
    cpu = torch.device("cpu")
    assert StepPrecision.from_config(tiny_config(None).train, cpu) == StepPrecision(bf16=False)
    assert StepPrecision.from_config(tiny_config(None, "train.precision=bf16").train, cpu).bf16
    with pytest.raises(ConfigError, match=r"train\.precision.*auto, fp32, bf16"):
        tiny_config(None, "train.precision=fp16")
