"""optim.disc_lr_scale: the discriminators' learning rate relative to the generators' (both trainers)."""

from __future__ import annotations

import pytest

from crossnet_dist.config import ConfigError
from crossnet_dist.training.loop import Trainer
from tests.helpers import tiny_config


def test_the_papers_default_gives_both_groups_one_learning_rate(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, "optim.lr=3e-4"))
    assert trainer.g_opt.lr == trainer.d_opt.lr == pytest.approx(3e-4)


def test_the_local_trainers_discriminators_take_the_scaled_learning_rate(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, "optim.lr=4e-4", "optim.disc_lr_scale=0.25"))
    assert trainer.g_opt.lr == pytest.approx(4e-4)
    assert trainer.d_opt.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_scale_that_is_not_positive_fails_naming_the_key(value):
    with pytest.raises(ConfigError, match="optim.disc_lr_scale"):
        tiny_config(None, f"optim.disc_lr_scale={value}")
