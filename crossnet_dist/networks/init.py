"""Weight initialisation of the CycleGAN-family networks (generators, translators, PatchGANs).

`normal` is the CycleGAN/pix2pix reference's `init_weights(net, 'normal', 0.02)`: every conv and
transposed-conv weight N(0, gain), biases 0 (and affine norm weights N(1, gain)). `pytorch` keeps
PyTorch's own (Kaiming-uniform) initialisation.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize

INIT_KINDS = ("normal", "pytorch")
_CONVS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_NORMS = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)


def init_weights(module: nn.Module, kind: str = "normal", gain: float = 0.02) -> nn.Module:
    if kind not in INIT_KINDS:
        raise ValueError(f"config key 'model.init': must be one of {', '.join(INIT_KINDS)} (got {kind!r})")
    if kind == "pytorch":
        return module
    for m in module.modules():
        if isinstance(m, _CONVS):
            # a spectral-normalised conv's weight is computed: initialise the parameter it comes from
            weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            nn.init.normal_(weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS) and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return module
