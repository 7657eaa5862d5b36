import dataclasses

import pytest

from crossnet_dist.config import ConfigError, load_config
from crossnet_dist.configs import packaged_configs
from tests.helpers import REPO, TINY_CONFIG


def test_defaults_are_the_papers():
    cfg = load_config()
    w = cfg.loss.crossnet
    assert (w.gan, w.identity, w.cross_translation, w.cross_identity, w.latent_cycle) == (1, 3, 3, 6, 6)
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.beta2, cfg.optim.pool_size) == (2e-4, 0.5, 0.999, 50)
    assert cfg.model.n_encoder_blocks == 9 and cfg.model.n_translator_blocks == 9
    assert (cfg.loss.cyclegan.cycle, cfg.loss.cyclegan.identity) == (10, 0.5)


PAPER_OPTIM = {  # (lr, beta1, beta2, pool_size) as each paper trains
    "crossnet": (2e-4, 0.5, 0.999, 50),  # CrossNet sec. 3.5
    "cyclegan": (2e-4, 0.5, 0.999, 50),  # CycleGAN sec. 4
    "unit": (1e-4, 0.5, 0.999, 0),  # UNIT sec. 4
    "xgan": (1e-4, 0.9, 0.999, 0),  # XGAN sec. 3.1 (lr only; Adam's own betas)
    "cascaded": (1e-4, 0.5, 0.999, 0),  # cascaded appendix A.1.1
}


@pytest.mark.parametrize("method", sorted(PAPER_OPTIM))
def test_the_method_alone_gives_its_papers_optimiser(method):
    o = load_config(None, [f"method={method}"]).optim
    assert (o.lr, o.beta1, o.beta2, o.pool_size) == PAPER_OPTIM[method]


@pytest.mark.parametrize("method", ["unit", "xgan", "cascaded"])
def test_another_methods_config_does_not_impose_its_optimiser(method):
    o = load_config(REPO / "jobs/configs/crossnet.yaml", [f"method={method}"]).optim
    assert (o.lr, o.beta1, o.beta2, o.pool_size) == PAPER_OPTIM[method]


def test_a_set_optimiser_value_wins_over_the_methods():
    o = load_config(None, ["method=unit", "optim.lr=3e-4", "optim.pool_size=10"]).optim
    assert (o.lr, o.pool_size, o.beta1) == (3e-4, 10, 0.5)


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
    ("optim.lr=.inf", "optim.lr"),
    ("loss.crossnet.gan=nan", "loss.crossnet.gan"),
    ("data.root=''", "data.root"),
    ("train.nonfinite=ignore", "train.nonfinite"),
])
def test_bad_keys_and_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(TINY_CONFIG, [override])


def test_unknown_key_in_yaml_names_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  image_sise: 64\n")
    with pytest.raises(ConfigError, match=r"model\.image_sise.*bad\.yaml"):
        load_config(bad)


@pytest.mark.parametrize("text, expected", [
    ("model: {image_size: 32\n  bad: [\n", r"bad\.yaml is not valid YAML at line 2, column 6"),
    ("- method\n- model\n", r"bad\.yaml must hold a mapping of sections .* not a list"),
    ("42\n", r"bad\.yaml must hold a mapping of sections"),
])
def test_a_yaml_file_that_is_not_a_config_mapping_names_the_file(tmp_path, text, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_config(bad)


def test_a_packaged_config_is_found_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no jobs/configs/ here
    assert load_config("unit").method == "unit" and load_config("emoji.yaml").model.image_size == 32
    with pytest.raises(ConfigError, match=r"config file not found: nope \(packaged configs: cascaded, crossnet"):
        load_config("nope")


def test_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("nope.yaml")


@pytest.mark.parametrize("name", sorted(packaged_configs()))
def test_every_packaged_config_loads_and_validates(name):
    assert load_config(name).method


def test_the_gpu_configs_train_in_bf16_channels_last_on_one_and_on_several_gpus():
    one, several = load_config("gpu"), load_config("gpu_multi")
    assert (one.dist.use_gpu, one.dist.num_workers, one.dist.zero_stage) == (True, 1, 0)
    assert (several.dist.use_gpu, several.dist.num_workers, several.dist.zero_stage) == (True, 8, 0)
    assert several.dist.storage_path.startswith("s3://")  # every node reaches the checkpoints
    for cfg in (one, several):
        assert (cfg.train.precision, cfg.train.channels_last, cfg.model.image_size) == ("bf16", True, 256)


def test_every_method_is_registered_with_its_own_options_and_weights():
    from crossnet_dist.methods import METHODS
    from crossnet_dist.methods.options import METHOD_OPTIONS

    assert sorted(METHODS) == sorted(METHOD_OPTIONS)
    cfg = load_config(None)
    for name, method in METHODS.items():
        assert method.options is METHOD_OPTIONS[name]
        assert sorted(cfg.loss[name]) == sorted(f.name for f in dataclasses.fields(method.options.weights))
        if method.options.options is not None:
            assert sorted(cfg.model[name]) == sorted(f.name for f in dataclasses.fields(method.options.options))


def test_test_only_hooks_are_not_config_keys():
    for override in ("dist.fail_at_step=4", "model.cascaded.random_vgg=true"):
        with pytest.raises(ConfigError, match=override.split("=")[0].rsplit(".", 1)[1]):
            load_config(None, [override])


@pytest.mark.parametrize("method", ["crossnet", "cyclegan", "unit", "xgan", "cascaded"])
def test_a_loaded_config_of_every_method_survives_the_standard_pickle(method):
    import pickle

    from omegaconf import OmegaConf

    cfg = load_config(None, [f"method={method}"])
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg
    assert OmegaConf.get_type(again.model).__module__ == "crossnet_dist.config"
