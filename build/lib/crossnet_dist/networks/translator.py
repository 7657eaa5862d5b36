"""Latent cross-translator T: Z_a <-> Z_b, residual blocks of 3x3 stride-1 convs (CrossNet sec. 3.5)."""

from torch import Tensor, nn

from crossnet_dist.networks.blocks import ResnetBlock
from crossnet_dist.networks.generator import latent_channels


class LatentTranslator(nn.Module):
    def __init__(self, model):
        super().__init__()
        channels = latent_channels(model)
        self.net = nn.Sequential(*[ResnetBlock(channels) for _ in range(model.n_translator_blocks)])

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)
