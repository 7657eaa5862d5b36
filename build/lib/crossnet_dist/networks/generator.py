"""The encoder-decoder generator: CycleGAN's resnet_9blocks cut after the residual blocks.

Encoder: 7x7 conv (ngf) -> n_downsampling stride-2 3x3 convs (doubling channels) -> residual blocks.
Decoder: n_downsampling stride-2 3x3 transposed convs (halving channels) -> 7x7 conv to RGB -> tanh.
With `model.upsample=resize` each transposed conv is a nearest-neighbour 2x resize followed by a
3x3 conv (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts"): the same shapes and
channels, without the uneven kernel overlap that paints checkerboards.
"""

from torch import Tensor, nn

from crossnet_dist.networks.blocks import ResnetBlock, norm_layer
from crossnet_dist.networks.shapes import check_image_size


def latent_channels(model) -> int:
    return model.gen_channels * 2 ** model.n_downsampling


class Encoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model_cfg = model
        ngf = model.gen_channels
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(model.in_channels, ngf, kernel_size=7, bias=True),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        for i in range(model.n_downsampling):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=True),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
            ]
        channels = latent_channels(model)
        layers += [ResnetBlock(channels) for _ in range(model.n_encoder_blocks)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        check_image_size(x.shape[-2], x.shape[-1], self.model_cfg)
        return self.net(x)


UPSAMPLE_KINDS = ("transposed", "resize")


def upsample_layer(kind: str, c_in: int, c_out: int) -> nn.Module:
    """A 2x upsampling conv: the paper's stride-2 transposed conv, or resize + conv."""
    if kind == "transposed":
        return nn.ConvTranspose2d(c_in, c_out, kernel_size=3, stride=2, padding=1, output_padding=1, bias=True)
    if kind == "resize":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, kernel_size=3, bias=True)
        )
    raise ValueError(f"config key 'model.upsample': must be one of {', '.join(UPSAMPLE_KINDS)} (got {kind!r})")


class Decoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        ngf = model.gen_channels
        layers: list[nn.Module] = []
        for i in range(model.n_downsampling):
            mult = 2 ** (model.n_downsampling - i)
            layers += [upsample_layer(model.upsample, ngf * mult, ngf * mult // 2), norm_layer(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, model.in_channels, kernel_size=7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)
