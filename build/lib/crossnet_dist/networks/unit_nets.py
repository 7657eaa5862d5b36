"""UNIT networks (Liu, Breuel, Kautz 2017, sec. 4): encoders of 3 convs + residual blocks, generators
mirroring them (residual blocks + 3 transposed convs), Leaky ReLU throughout.

Weight sharing (sec. 3) is done by handing the *same* module object to both encoders (their last
`shared_layers` residual blocks) and to both generators (their first ones), so the tied weights are
one set of tensors that receives gradient from both domains.
"""

from __future__ import annotations

from torch import Tensor, nn

from crossnet_dist.networks.blocks import norm_layer
from crossnet_dist.networks.generator import latent_channels
from crossnet_dist.networks.shapes import check_image_size


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, True)


class UNITResBlock(nn.Module):
    """A basic residual block (He et al.): x + [conv3x3, IN, LReLU, conv3x3, IN](x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(channels), _act(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def shared_blocks(model) -> nn.Sequential:
    """The tied high-level layers: `model.unit.shared_layers` residual blocks on the latent width."""
    return nn.Sequential(*[UNITResBlock(latent_channels(model)) for _ in range(model.unit.shared_layers)])


class UNITEncoder(nn.Module):
    """E_mu: 7x7 conv + n_downsampling stride-2 convs, then private residual blocks, then `shared`.

    Returns the mean code E_mu(x); the latent has unit variance (q(z|x) = N(E_mu(x), I))."""

    def __init__(self, model, shared: nn.Sequential):
        super().__init__()
        self.model_cfg = model
        ngf = model.gen_channels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(model.in_channels, ngf, 7), norm_layer(ngf), _act()]
        for i in range(model.n_downsampling):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), norm_layer(2 * c), _act()]
        n_private = model.n_encoder_blocks - model.unit.shared_layers
        layers += [UNITResBlock(latent_channels(model)) for _ in range(n_private)]
        self.private = nn.Sequential(*layers)
        self.shared = shared

    def forward(self, x: Tensor) -> Tensor:
        check_image_size(x.shape[-2], x.shape[-1], self.model_cfg)
        return self.shared(self.private(x))


class UNITGenerator(nn.Module):
    """G: `shared` residual blocks, private ones (as many as the encoder has in all), then
    n_downsampling stride-2 transposed convs and a stride-1 7x7 transposed conv to RGB, tanh."""

    def __init__(self, model, shared: nn.Sequential):
        super().__init__()
        self.shared = shared
        ngf = model.gen_channels
        n_private = model.n_encoder_blocks - model.unit.shared_layers
        layers: list[nn.Module] = [UNITResBlock(latent_channels(model)) for _ in range(n_private)]
        for i in range(model.n_downsampling):
            c = ngf * 2 ** (model.n_downsampling - i)
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1), norm_layer(c // 2), _act(),
            ]
        layers += [nn.ConvTranspose2d(ngf, model.in_channels, 7, stride=1, padding=3), nn.Tanh()]
        self.private = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.private(self.shared(z))
