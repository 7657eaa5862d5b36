"""The encoder-decoder generator: CycleGAN's resnet_9blocks cut after the residual blocks.

Encoder: 7x7 conv (ngf) -> n_downsampling stride-2 3x3 convs (doubling channels) -> residual blocks.
Decoder: n_downsampling stride-2 3x3 transposed convs (halving channels) -> 7x7 conv to RGB -> tanh.
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


class Decoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        ngf = model.gen_channels
        layers: list[nn.Module] = []
        for i in range(model.n_downsampling):
            mult = 2 ** (model.n_downsampling - i)
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=True
                ),
                norm_layer(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, model.in_channels, kernel_size=7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)
