"""PatchGAN discriminator (pix2pix/CycleGAN "basic", 70x70 receptive field with 3 layers)."""

from torch import Tensor, nn

from crossnet_dist.networks.blocks import norm_layer


class PatchGAN(nn.Module):
    def __init__(self, model):
        super().__init__()
        ndf, n_layers = model.disc_channels, model.disc_layers
        layers: list[nn.Module] = [
            nn.Conv2d(model.in_channels, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=stride, padding=1, bias=True),
                norm_layer(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers += [nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
