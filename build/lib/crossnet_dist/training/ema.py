"""An exponential moving average of the translation networks' weights (`train.ema_decay`).

Only the modules test-time translation uses (`method.translation_modules`) are averaged: they are
what generator.pt, eval and serving load. The average is kept in fp32 on the parameters' device
and updated after every optimiser step with one fused lerp. Its decay warms up as
min(decay, (1 + n) / (10 + n)) after n updates (as TensorFlow's ExponentialMovingAverage with
num_updates), so a short run is not dominated by its random initial weights. Buffers (none in the
instance-normalised networks, running stats elsewhere) are copied, not averaged.
"""

from __future__ import annotations

import torch
from torch import Tensor


class TranslatorEMA:
    def __init__(self, method, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"config key 'train.ema_decay': must be in (0, 1) (got {decay!r})")
        self.decay = float(decay)
        self.updates = 0
        self._params = {k: p for k, p in self._named(method, "parameters")}
        self._buffers = {k: b for k, b in self._named(method, "buffers")}
        self.shadow = {k: p.detach().float().clone() for k, p in self._params.items()}
        self.shadow.update({k: b.detach().clone() for k, b in self._buffers.items()})

    @staticmethod
    def _named(method, what: str):
        for module in method.translation_modules:
            for name, tensor in getattr(method.generators[module], f"named_{what}")():
                yield f"{module}.{name}", tensor

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        weight = 1.0 - self.current_decay()
        keys = list(self._params)
        sources = [self._params[k].detach() for k in keys]
        sources = [s if s.dtype == torch.float32 else s.float() for s in sources]
        torch._foreach_lerp_([self.shadow[k] for k in keys], sources, weight)
        for k, b in self._buffers.items():
            self.shadow[k].copy_(b)
        self.updates += 1

    def translation_state_dict(self) -> dict[str, dict[str, Tensor]]:
        """The averaged weights in the layout of `method.translation_state_dict()`."""
        return nest_by_module({k: v.detach().cpu() for k, v in self.shadow.items()})

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        missing = sorted(set(self.shadow) - set(state["shadow"]))
        if missing:
            raise KeyError(f"EMA state lacks {missing[:3]}")
        for k, v in self.shadow.items():
            v.copy_(state["shadow"][k])
        self.updates = int(state["updates"])


def nest_by_module(flat: dict[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """{"E_ab.net.0.weight": t} -> {"E_ab": {"net.0.weight": t}} (a saved EMA's shadow as translation state)."""
    out: dict[str, dict[str, Tensor]] = {}
    for key, tensor in flat.items():
        module, name = key.split(".", 1)
        out.setdefault(module, {})[name] = tensor
    return out


def build_ema(method, decay: float) -> TranslatorEMA | None:
    return TranslatorEMA(method, decay) if decay > 0 else None
