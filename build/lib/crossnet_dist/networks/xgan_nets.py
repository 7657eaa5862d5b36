"""XGAN networks (Royer et al. 2017, appendix 7.1, Table 1), generalised from 64x64 to any power of two.

Encoder: conv blocks (4x4 stride 2, BN, ReLU) halving the image down to 4x4 (4 blocks at 64x64:
32, 64, 128, 256 channels), FC1 -> FC2 (the embedding, no BN), L2-normalised. The two innermost conv
blocks and the FC head are shared across domains (Table 1's (//) marks); the BatchNorms after shared
layers are per domain (not in the paper, which does not say: one set of statistics for both domains
and for translated images made eval mode differ from train mode, max |difference| 1.2 on [-1, 1]).
Decoder (mirrored): deconv1 (1x1 -> 4x4), then stride-2 deconvs up to the image; deconv1 and deconv2
shared; BN + ReLU after every layer but the last (tanh).
Discriminator: conv blocks 16, 32, 32, 32 down to 4x4 and one logit (Table 1c).
Domain classifier c_dann: an MLP on the embedding behind a gradient reversal layer (Ganin et al.).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def n_conv_blocks(image_size: int) -> int:
    """Stride-2 blocks from the image down to 4x4: 4 at 64x64, as in Table 1."""
    return int(math.log2(image_size)) - 2


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(True))


def _deconv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(True))


def encoder_channels(model) -> list[int]:
    c = model.xgan.enc_channels
    return [c * 2**k for k in range(n_conv_blocks(model.image_size))]


class XGANEncoderShared(nn.Module):
    """The weights shared by e_1 and e_2: the two innermost convs, FC1 and FC2. Their BatchNorms are
    each encoder's own (`XGANEncoder.shared_norms`): one set of running statistics per domain, so the
    eval-mode (serving) encoder normalises as the train-mode one did on that domain's batches."""

    def __init__(self, model):
        super().__init__()
        ch = encoder_channels(model)
        inner = ch[-2:]  # at least 3 blocks (image >= 32): the last two are shared
        self.convs = nn.ModuleList([nn.Conv2d(ch[-3], inner[0], 4, 2, 1), nn.Conv2d(inner[0], inner[1], 4, 2, 1)])
        d = model.xgan.embedding_dim
        self.fc1 = nn.Linear(4 * 4 * inner[-1], d)
        self.fc2 = nn.Linear(d, d)

    def norms(self) -> nn.ModuleList:
        """A fresh set of the BatchNorms that follow the shared convs and FC1 (one per domain)."""
        return nn.ModuleList([*[nn.BatchNorm2d(c.out_channels) for c in self.convs], nn.BatchNorm1d(self.fc1.out_features)])

    def forward(self, h: Tensor, norms: nn.ModuleList) -> Tensor:
        for conv, norm in zip(self.convs, norms):
            h = F.relu(norm(conv(h)))
        e = self.fc2(F.relu(norms[-1](self.fc1(h.flatten(1)))))
        return F.normalize(e, dim=1)


class XGANEncoder(nn.Module):
    def __init__(self, model, shared: XGANEncoderShared):
        super().__init__()
        ch = encoder_channels(model)
        outer = ch[:-2]  # private blocks; at 32x32 only conv1
        self.private = nn.Sequential(*[_conv_block(a, b) for a, b in zip([model.in_channels, *outer[:-1]], outer)])
        self.shared = shared
        self.shared_norms = shared.norms()

    def forward(self, x: Tensor) -> Tensor:
        return self.shared(self.private(x), self.shared_norms)


def decoder_channels(model) -> list[int]:
    """Outputs of deconv1..deconvN: 512, 256, 128, 64 at 64x64 (the last deconv then outputs RGB)."""
    top = 2 * encoder_channels(model)[-1]
    return [top // 2**k for k in range(n_conv_blocks(model.image_size))]


class XGANDecoderShared(nn.Module):
    """deconv1 (embedding 1x1 -> 4x4) and deconv2 (-> 8x8), shared by d_1 and d_2; their BatchNorms
    are each decoder's own (`XGANDecoder.shared_norms`), as in the encoders."""

    def __init__(self, model):
        super().__init__()
        ch = decoder_channels(model)
        self.deconvs = nn.ModuleList([nn.ConvTranspose2d(model.xgan.embedding_dim, ch[0], 4, 1, 0),
                                      nn.ConvTranspose2d(ch[0], ch[1], 4, 2, 1)])

    def norms(self) -> nn.ModuleList:
        return nn.ModuleList([nn.BatchNorm2d(c.out_channels) for c in self.deconvs])

    def forward(self, e: Tensor, norms: nn.ModuleList) -> Tensor:
        h = e[:, :, None, None]
        for deconv, norm in zip(self.deconvs, norms):
            h = F.relu(norm(deconv(h)))
        return h


class XGANDecoder(nn.Module):
    def __init__(self, model, shared: XGANDecoderShared):
        super().__init__()
        self.shared = shared
        self.shared_norms = shared.norms()
        ch = decoder_channels(model)[1:]
        layers: list[nn.Module] = [_deconv_block(a, b) for a, b in zip(ch[:-1], ch[1:])]
        layers += [nn.ConvTranspose2d(ch[-1], model.in_channels, 4, 2, 1), nn.Tanh()]
        self.private = nn.Sequential(*layers)

    def forward(self, e: Tensor) -> Tensor:
        return self.private(self.shared(e, self.shared_norms))


@contextmanager
def frozen_running_stats(*modules: nn.Module):
    """BatchNorm layers of `modules` normalise with batch statistics as usual but leave their running
    statistics unchanged (momentum 0): for passes that are not the translation stream serving runs."""
    norms = [m for module in modules for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(n.momentum, n.num_batches_tracked.clone()) for n in norms]  # the count drives momentum=None
    for n in norms:
        n.momentum = 0.0
    try:
        yield
    finally:
        for n, (momentum, tracked) in zip(norms, saved):
            n.momentum = momentum
            n.num_batches_tracked.copy_(tracked)


class XGANDiscriminator(nn.Module):
    """Table 1c: conv blocks (16, 32, 32, 32 at 64x64) to 4x4, then FC to one logit."""

    def __init__(self, model):
        super().__init__()
        c = model.xgan.disc_channels
        ch = [min(c * 2**k, 2 * c) for k in range(n_conv_blocks(model.image_size))]
        self.convs = nn.Sequential(*[_conv_block(a, b) for a, b in zip([model.in_channels, *ch[:-1]], ch)])
        self.fc = nn.Linear(4 * 4 * ch[-1], 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x).flatten(1))


class GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the gradient by -coeff backward (Ganin et al. 2016)."""

    @staticmethod
    def forward(ctx, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return -ctx.coeff * grad, None


def grad_reverse(x: Tensor, coeff: float = 1.0) -> Tensor:
    return GradientReversal.apply(x, coeff)


class DomainClassifier(nn.Module):
    """c_dann: embedding -> gradient reversal -> MLP -> logit of 'from D_2'."""

    def __init__(self, model):
        super().__init__()
        d, h = model.xgan.embedding_dim, model.xgan.dann_hidden
        self.net = nn.Sequential(nn.Linear(d, h), nn.ReLU(True), nn.Linear(h, 1))

    def forward(self, e: Tensor, reverse: bool = True) -> Tensor:
        return self.net(grad_reverse(e) if reverse else e)
