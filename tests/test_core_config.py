import pytest

from crossnet_dist.config import ConfigError, load_config
from tests.helpers import TINY_CONFIG


def test_defaults_are_the_papers():
    cfg = load_config()
    w = cfg.loss.crossnet
    assert (w.gan, w.identity, w.cross_translation, w.cross_identity, w.latent_cycle) == (1, 3, 3, 6, 6)
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.beta2, cfg.optim.pool_size) == (2e-4, 0.5, 0.999, 50)
    assert cfg.model.n_encoder_blocks == 9 and cfg.model.n_translator_blocks == 9
    assert (cfg.loss.cyclegan.cycle, cfg.loss.cyclegan.identity) == (10, 0.5)


def test_yaml_then_overrides():
    cfg = load_config(TINY_CONFIG, ["optim.lr=1e-4", "loss.crossnet.latent_cycle=0"])
    assert cfg.optim.lr == 1e-4 and cfg.loss.crossnet.latent_cycle == 0
    assert cfg.model.image_size == 32  # from the YAML


@pytest.mark.parametrize("override,key", [
    ("optim.lrr=1e-4", "optim.lrr"),
    ("model.image_size=big", "model.image_size"),
    ("loss.crossnet.zid=1", "loss.crossnet.zid"),
    ("train.max_steps=-1", "train.max_steps"),
    ("loss.crossnet.gan=-1", "loss.crossnet.gan"),
    ("optim.beta1=1.5", "optim.beta1"),
    ("method=pix2pix", "method"),
    ("model.image_size=30", "model.image_size"),
    ("data.load_size=16", "data.load_size"),
])
def test_bad_keys_and_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(TINY_CONFIG, [override])


def test_unknown_key_in_yaml_names_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  image_sise: 64\n")
    with pytest.raises(ConfigError, match=r"model\.image_sise.*bad\.yaml"):
        load_config(bad)


def test_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("nope.yaml")
