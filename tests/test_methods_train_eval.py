"""Train-mode and eval-mode translation agree: what a run's samples show during training is what
eval and serving (always eval mode) return."""

import pytest
import torch
from torch import nn

from crossnet_dist.image_pool import ImagePool
from crossnet_dist.methods import build_method
from crossnet_dist.training.optimizers import torch_optimizer_groups
from crossnet_dist.training.step import train_step
from tests.helpers import REPO, TINY_CONFIG, cascaded_test_overrides, config_from, tiny_batches

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Methods whose translators have no stochastic layer at test time (UNIT translates the mean code) and
# no batch-statistic layer (instance norm, no running statistics): the two modes are the same function.
DETERMINISTIC = {
    "crossnet": (TINY_CONFIG, ()),
    "cyclegan": (TINY_CONFIG, ("method=cyclegan",)),
    "unit": (REPO / "jobs/configs/tiny_unit.yaml", ()),
    "cascaded": (REPO / "jobs/configs/tiny_cascaded.yaml", ()),
}


def _trained(yaml, *overrides, steps: int = 3, batch_size: int = 4):
    torch.manual_seed(0)
    if "cascaded" in yaml.name:
        overrides = (*cascaded_test_overrides(), *overrides)
    cfg = config_from(yaml, None, *overrides)
    method = build_method(cfg)
    g_opt, d_opt = torch_optimizer_groups(method, cfg.optim)
    pools = {"a": ImagePool(0), "b": ImagePool(0)}
    batches = tiny_batches(steps, batch_size=batch_size)
    for batch in batches:
        train_step(method, batch["a"], batch["b"], g_opt, d_opt, pools)
    return method, batches[0]


def _both_modes(method, x, direction):
    with torch.no_grad():
        train_out = method.train().translate(x, direction)
        eval_out = method.eval().translate(x, direction)
    return train_out, eval_out


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_eval_mode_translation_equals_train_mode(name):
    yaml, overrides = DETERMINISTIC[name]
    method, batch = _trained(yaml, *overrides)
    for direction, key in (("a2b", "a"), ("b2a", "b")):
        train_out, eval_out = _both_modes(method, batch[key], direction)
        assert torch.allclose(train_out, eval_out, atol=1e-6), (name, direction)


def test_xgan_eval_mode_normalises_as_the_training_translation_stream_did():
    """XGAN's BatchNorms (per domain, in the shared layers too) average only the passes serving runs:
    with the running statistics of one training step, eval mode reproduces that step's train-mode
    translation up to the unbiased-variance correction of a 16-image batch. (With one set of
    statistics for both domains and the translated images this test measured differences up to 1.55.)"""
    method, _ = _trained(REPO / "jobs/configs/tiny_xgan.yaml", batch_size=16)
    batch = tiny_batches(1, batch_size=16)[0]
    norms = [m for m in method.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for n in norms:
        n.reset_running_stats()
        n.momentum = 1.0  # running statistics = the last batch's
    with torch.no_grad():
        method.train().generator_step(batch["a"], batch["b"])
    for n in norms:
        n.momentum = 0.0  # the comparison itself moves nothing
    for direction, key in (("a2b", "a"), ("b2a", "b")):
        train_out, eval_out = _both_modes(method, batch[key], direction)
        assert (train_out - eval_out).abs().max().item() < 0.05, direction
        assert (train_out - eval_out).abs().mean().item() < 0.005, direction
