"""Networks of the cascaded deep translation (appendix A.1.2 of papers/cascaded-deep-translation.txt).

Widths are the paper's when model.cascaded.max_channels >= 512; a smaller cap narrows every hidden
layer (never the VGG feature channels themselves), for tests and laptops.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crossnet_dist.networks.adain import AdaIN, assign_adain_params, count_adain_params
from crossnet_dist.networks.vgg import LEVEL_CHANNELS


def _gn(channels: int) -> nn.GroupNorm:
    """Group norm with up to 32 groups of at least 2 channels (a 1x1 map of a narrow net keeps >1 value)."""
    return nn.GroupNorm(math.gcd(32, max(channels // 2, 1)), channels)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2, True)


def level_size(image_size: int, level: int) -> int:
    """Side of conv<level>_1 for a square image (VGG pools by 2 before each block)."""
    return image_size // 2 ** (level - 1)


class DeepestTranslator(nn.Module):
    """Table 3: G_5 on normalised conv5_1 maps, an encoder-decoder with group norm, ReLU, tanh output.

    conv(C, c) | conv(c, c/2, s2) GN ReLU | conv(c/2, c, s2) GN ReLU | convT(c, c/2, s2) GN ReLU |
    convT(c/2, c/2, s2) GN ReLU | conv(c/2, c) GN ReLU | conv(c, C) tanh, with C = 512 and c = min(512, cap).
    The transposed convs get the encoder's sizes back exactly (14 -> 7 -> 4 -> 7 -> 14 at 224).
    """

    def __init__(self, cap: int, channels: int = LEVEL_CHANNELS[5]):
        super().__init__()
        c = min(channels, cap)
        h = max(c // 2, 1)
        self.inp = nn.Conv2d(channels, c, 3, padding=1)
        self.down1 = nn.Sequential(nn.Conv2d(c, h, 3, stride=2, padding=1), _gn(h), nn.ReLU(True))
        self.down2 = nn.Sequential(nn.Conv2d(h, c, 3, stride=2, padding=1), _gn(c), nn.ReLU(True))
        self.up1, self.up1_post = nn.ConvTranspose2d(c, h, 3, stride=2, padding=1), nn.Sequential(_gn(h), nn.ReLU(True))
        self.up2, self.up2_post = nn.ConvTranspose2d(h, h, 3, stride=2, padding=1), nn.Sequential(_gn(h), nn.ReLU(True))
        self.out = nn.Sequential(
            nn.Conv2d(h, c, 3, padding=1), _gn(c), nn.ReLU(True), nn.Conv2d(c, channels, 3, padding=1), nn.Tanh()
        )

    def forward(self, x: Tensor) -> Tensor:
        h0 = self.inp(x)
        h1 = self.down1(h0)
        h2 = self.down2(h1)
        u1 = self.up1_post(self.up1(h2, output_size=h1.shape[-2:]))
        u2 = self.up2_post(self.up2(u1, output_size=h0.shape[-2:]))
        return self.out(u2)


class AdaINParams(nn.Module):
    """Table 4: the AdaIN component for level i. (7 - i) stride-2 3x3 convs with Leaky ReLU on the
    current-level features (3 at level 4: 28x28 -> 4x4 at 224), then linear -> hidden -> linear to the
    AdaIN parameters. Channels double from C_i up to the cap (512 in the paper)."""

    def __init__(self, level: int, n_params: int, cap: int, hidden: int, image_size: int):
        super().__init__()
        ch = LEVEL_CHANNELS[level]
        layers: list[nn.Module] = []
        size = level_size(image_size, level)
        c_in, c_max = ch, min(512, cap)
        for _ in range(7 - level):  # 3 at level 4, one more per shallower level
            c_out = min(2 * c_in, c_max) if c_in < c_max else c_max
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), _lrelu()]
            c_in, size = c_out, (size + 1) // 2
        self.convs = nn.Sequential(*layers)
        self.size = size  # spatial side of the last map at the training image size
        self.mlp = nn.Sequential(nn.Linear(c_in * size * size, hidden), _lrelu(), nn.Linear(hidden, n_params))

    def forward(self, x: Tensor) -> Tensor:
        h = self.convs(x)
        if h.shape[-1] != self.size or h.shape[-2] != self.size:  # another input size than trained on
            h = F.adaptive_avg_pool2d(h, self.size)
        return self.mlp(h.flatten(1))


class ConditionalTranslator(nn.Module):
    """G_i (i < 5), Table 5 + Fig. 4: the content path takes the translated deeper map y_{i+1}
    (x = C_{i+1} channels): conv(x, x) AdaIN LReLU | conv(x, x) AdaIN LReLU | convT(x, x/2, 4, s2) AdaIN
    LReLU | conv(x/2, C_i) tanh, x capped. Its AdaIN parameters come from the current-level map (Table 4).
    (Table 5 ends in x/2 channels, which is C_i at level 3 but not at level 4, where C_4 = C_5 = 512:
    the last conv outputs C_i.)"""

    def __init__(self, level: int, cap: int, hidden: int, image_size: int):
        super().__init__()
        x_in, c_out = LEVEL_CHANNELS[level + 1], LEVEL_CHANNELS[level]
        x = min(x_in, cap)
        h = max(x // 2, 1)
        self.content = nn.Sequential(
            nn.Conv2d(x_in, x, 3, padding=1), AdaIN(x), _lrelu(),
            nn.Conv2d(x, x, 3, padding=1), AdaIN(x), _lrelu(),
            nn.ConvTranspose2d(x, h, 4, stride=2, padding=1), AdaIN(h), _lrelu(),
            nn.Conv2d(h, c_out, 3, padding=1), nn.Tanh(),
        )
        self.adain = AdaINParams(level, count_adain_params(self.content), cap, hidden, image_size)

    def forward(self, current: Tensor, deeper: Tensor) -> Tensor:
        """current: this level's (source-domain) map, the style; deeper: the translated map of level i+1."""
        assign_adain_params(self.content, self.adain(current))
        return self.content(deeper)


class FeatureCritic(nn.Module):
    """WGAN-GP critic on a normalised feature map (not specified in the paper): conv 3x3 then two stride-2
    convs with Leaky ReLU and no normalisation (Gulrajani et al. advise none), a 1-channel score map."""

    def __init__(self, level: int, cap: int):
        super().__init__()
        ch = LEVEL_CHANNELS[level]
        c = min(ch, cap)
        self.net = nn.Sequential(
            nn.Conv2d(ch, c, 3, padding=1), _lrelu(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), _lrelu(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), _lrelu(),
            nn.Conv2d(c, 1, 3, padding=1),
        )

    def forward(self, y: Tensor) -> Tensor:
        return self.net(y).flatten(1).mean(1)  # one score per sample


class InversionNet(nn.Module):
    """Appendix A.1.2 (after Dosovitskiy & Brox): three stride-1 convs on the C_i-channel map, then
    (i - 1) transposed convs each doubling the resolution and halving the channels, then a conv to RGB
    and tanh; Leaky ReLU (0.2), no normalisation."""

    def __init__(self, level: int, cap: int, out_channels: int = 3):
        super().__init__()
        ch = LEVEL_CHANNELS[level]
        c = min(ch, cap)
        layers: list[nn.Module] = [nn.Conv2d(ch, c, 3, padding=1), _lrelu()]
        layers += [nn.Conv2d(c, c, 3, padding=1), _lrelu(), nn.Conv2d(c, c, 3, padding=1), _lrelu()]
        for _ in range(level - 1):
            layers += [nn.ConvTranspose2d(c, max(c // 2, 8), 4, stride=2, padding=1), _lrelu()]
            c = max(c // 2, 8)
        layers += [nn.Conv2d(c, out_channels, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, y: Tensor) -> Tensor:
        return self.net(y)


class InversionPatchGAN(nn.Module):
    """Appendix A.1.2: PatchGAN with four stride-2 4x4 convs, batch norm except on the first, Leaky
    ReLU, then a 1-channel score map (trained with LSGAN)."""

    def __init__(self, ndf: int, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), _lrelu()]
        c = ndf
        for _ in range(3):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.BatchNorm2d(2 * c), _lrelu()]
            c *= 2
        layers.append(nn.Conv2d(c, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class FeatureStats(nn.Module):
    """Per-domain, per-level, per-channel mean and std of the VGG features (sec. 3, pre-processing),
    as buffers (saved with the generators, exported for serving).

    Estimated from the first `stats_batches` training batches (the average of the batch moments;
    all-reduced over the workers when torch.distributed is initialised), then fixed. Also counts the
    translator updates each level has had (`trained_steps[level]`, 0 = inversion nets).
    """

    def __init__(self, levels):
        super().__init__()
        self.levels = tuple(levels)
        for d in "AB":
            for i in self.levels:
                self.register_buffer(f"mean_{d}{i}", torch.zeros(LEVEL_CHANNELS[i]))
                self.register_buffer(f"sqmean_{d}{i}", torch.ones(LEVEL_CHANNELS[i]))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))
        self.register_buffer("trained_steps", torch.zeros(6, dtype=torch.long))

    @torch.no_grad()
    def update(self, feats_a: dict[int, Tensor], feats_b: dict[int, Tensor]) -> None:
        moments = []
        for feats in (feats_a, feats_b):
            for i in self.levels:
                f = feats[i].float()
                moments += [f.mean(dim=(0, 2, 3)), f.pow(2).mean(dim=(0, 2, 3))]
        flat = torch.cat(moments)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flat)
            flat /= torch.distributed.get_world_size()
        n = float(self.batches)
        start = 0
        for d in "AB":
            for i in self.levels:
                c = LEVEL_CHANNELS[i]
                for name in (f"mean_{d}{i}", f"sqmean_{d}{i}"):
                    buf = getattr(self, name)
                    buf.copy_((buf * n + flat[start : start + c]) / (n + 1))
                    start += c
        self.batches += 1

    def normalize(self, f: Tensor, domain: str, level: int) -> Tensor:
        """(f - mean) / std per channel, clamped to [-1, 1]."""
        mean = getattr(self, f"mean_{domain}{level}")
        var = (getattr(self, f"sqmean_{domain}{level}") - mean.pow(2)).clamp_min(1e-8)
        return ((f - mean[:, None, None]) / var.sqrt()[:, None, None]).clamp(-1.0, 1.0)
