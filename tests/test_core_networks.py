import pytest
import torch

from crossnet_dist.config import load_config
from crossnet_dist.methods import build_method
from crossnet_dist.networks import (
    Decoder,
    Encoder,
    ImageSizeError,
    LatentTranslator,
    PatchGAN,
    latent_channels,
    patchgan_output_size,
)
from tests.helpers import tiny_config


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_at_paper_defaults():
    model = load_config().model
    assert n_params(Encoder(model)) + n_params(Decoder(model)) == 11_378_179
    assert n_params(LatentTranslator(model)) == 10_621_440
    assert n_params(PatchGAN(model)) == 2_764_737


def test_crossnet_has_exactly_the_papers_modules():
    method = build_method(load_config())
    assert sorted(method.generators) == ["D_a", "D_b", "E_ab", "E_ba", "T_ab", "T_ba"]
    assert sorted(method.discriminators) == ["Q_a", "Q_b"]
    inference = build_method(load_config(), inference=True)
    assert sorted(inference.generators) == ["D_a", "D_b", "E_ab", "E_ba"]
    assert len(inference.discriminators) == 0


def test_cyclegan_has_no_translators():
    method = build_method(load_config(None, ["method=cyclegan"]))
    assert sorted(method.generators) == ["D_a", "D_b", "E_ab", "E_ba"]


def test_instance_norm_has_no_affine_and_convs_have_bias():
    model = tiny_config().model
    for net in (Encoder(model), Decoder(model), LatentTranslator(model), PatchGAN(model)):
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                assert not m.affine and not m.track_running_stats
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                assert m.bias is not None


@pytest.mark.parametrize("height,width", [(32, 32), (36, 44), (44, 28), (64, 100)])
def test_shapes_through_every_path(height, width):
    model = tiny_config().model
    E, D, T, Q = Encoder(model), Decoder(model), LatentTranslator(model), PatchGAN(model)
    x = torch.randn(2, 3, height, width)
    z = E(x)
    assert z.shape == (2, latent_channels(model), height // 4, width // 4)
    assert T(z).shape == z.shape
    y = D(z)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert Q(x).shape == (2, 1, patchgan_output_size(height, 3), patchgan_output_size(width, 3))


def test_patchgan_70x70_output_size_at_256():
    assert patchgan_output_size(256, 3) == 30


@pytest.mark.parametrize("height,width,needle", [(30, 32, "height 30 is not a multiple of 4"),
                                                  (32, 42, "width 42 is not a multiple of 4"),
                                                  (4, 32, "too small")])
def test_sizes_the_network_cannot_take_raise_a_clear_error(height, width, needle):
    E = Encoder(tiny_config().model)
    with pytest.raises(ImageSizeError, match=needle):
        E(torch.randn(1, 3, height, width))
