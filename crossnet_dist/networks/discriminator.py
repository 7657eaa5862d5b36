"""PatchGAN discriminator (pix2pix/CycleGAN "basic", 70x70 receptive field with 3 layers).

Two options beyond the papers (their defaults keep the papers' network): `model.disc_norm=spectral`
puts spectral normalisation (Miyato et al. 2018) on every conv in place of instance norm, and
`model.disc_augment` applies differentiable augmentation (networks/diff_augment.py) to every
image the discriminator sees while training.
"""

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from crossnet_dist.networks.blocks import norm_layer
from crossnet_dist.networks.diff_augment import diff_augment, parse_policy


class PatchGAN(nn.Module):
    def __init__(self, model):
        super().__init__()
        ndf, n_layers = model.disc_channels, model.disc_layers
        spectral = model.disc_norm == "spectral"

        def conv(*args, **kwargs) -> nn.Module:
            layer = nn.Conv2d(*args, **kwargs)
            return spectral_norm(layer) if spectral else layer

        layers: list[nn.Module] = [
            conv(model.in_channels, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [conv(ndf * prev, ndf * mult, kernel_size=4, stride=stride, padding=1, bias=True)]
            layers += [nn.Identity() if spectral else norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers += [conv(ndf * mult, 1, kernel_size=4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)
        self.augment = parse_policy(model.disc_augment)

    def forward(self, x: Tensor) -> Tensor:
        if self.augment and self.training:
            x = diff_augment(x, self.augment)
        return self.net(x)
