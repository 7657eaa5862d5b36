"""Building blocks shared by the generators and translators (Johnson et al. / CycleGAN)."""

from torch import Tensor, nn


def norm_layer(channels: int) -> nn.Module:
    # InstanceNorm without affine parameters or running stats, as the CycleGAN reference's "instance".
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """x + [reflect-pad, conv3x3, IN, ReLU, reflect-pad, conv3x3, IN](x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3, bias=True),
            norm_layer(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3, bias=True),
            norm_layer(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)
