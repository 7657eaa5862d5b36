"""VGG-19 up to conv5_1, with torchvision's `features` layer indices, and its weight loader.

The cascaded method reads conv_i_1 (i = 1..5), the outputs of those convolutions (before their
ReLU). Weights come from a file in torchvision's vgg19 state-dict format (keys
`features.<index>.weight/bias`; the classifier keys are ignored): nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

# torchvision's cfgs["E"]: convs per block 2, 2, 4, 4, 4 (channels 64, 128, 256, 512, 512)
_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
LEVEL_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
CONV_I_1 = {1: 0, 2: 5, 3: 10, 4: 19, 5: 28}  # index of conv_i_1 in vgg19().features
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGWeightsError(FileNotFoundError):
    """The VGG-19 weights file is missing or is not a vgg19 state dict; the message names key and path."""


def _vgg19_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    c_in = 3
    for channels, n_convs in _BLOCKS:
        for _ in range(n_convs):
            layers += [nn.Conv2d(c_in, channels, 3, padding=1), nn.ReLU(inplace=False)]
            c_in = channels
        layers.append(nn.MaxPool2d(2, 2))
    return layers


class VGG19Features(nn.Module):
    """vgg19().features[:29] (through conv5_1); frozen. Input images in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*_vgg19_layers()[: CONV_I_1[5] + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def forward(self, x: Tensor, levels=(1, 2, 3, 4, 5)) -> dict[int, Tensor]:
        """{i: conv_i_1(x)} for the requested levels."""
        h = ((x + 1) / 2 - self.mean) / self.std
        wanted = {CONV_I_1[i]: i for i in levels}
        out: dict[int, Tensor] = {}
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in wanted:
                out[wanted[index]] = h
            if len(out) == len(wanted):
                break
        return out

    def load_torchvision_weights(self, path: str | Path, key: str = "model.cascaded.vgg_weights") -> None:
        path = Path(path)
        if not str(path) or not path.is_file():
            raise VGGWeightsError(
                f"config key '{key}': no VGG-19 weights file at {str(path)!r}. Give the path of torchvision's "
                "vgg19 state dict (vgg19-dcbb9e9d.pth, e.g. from ~/.cache/torch/hub/checkpoints/); "
                "it cannot be downloaded here"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise VGGWeightsError(f"config key '{key}': cannot read {path} ({type(err).__name__}: {err})") from None
        ours = self.features.state_dict()
        wanted = {f"features.{k}": k for k in ours}
        missing = [k for k in wanted if k not in state]
        misshapen = [k for k in wanted if k in state and state[k].shape != ours[wanted[k]].shape]
        if missing or misshapen:
            raise VGGWeightsError(
                f"config key '{key}': {path} is not a torchvision vgg19 state dict "
                f"(missing {missing[:4]}, wrong shape {misshapen[:4]})"
            )
        self.features.load_state_dict({wanted[k]: state[k] for k in wanted})
