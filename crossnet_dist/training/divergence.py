"""Non-finite losses (train.nonfinite): stop with an error naming the step and the term, or skip the
update and count it.

stop (the default) costs no host-device sync per step: `NonFiniteWatch` keeps, on the device, the
first step at which each logged term was not finite, and `check` reads it once per log window and
before every checkpoint and export, so a diverged model is never saved. skip decides before each
optimiser update (`FiniteGate`), which needs the loss on the host: one sync per update (and, in the
distributed trainer, one all-reduce so that every rank skips the same updates).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

NONFINITE_MODES = ("stop", "skip")
NEVER = 2**62  # "no non-finite step yet"


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss; the message names the step and the term."""


class NonFiniteWatch:
    def __init__(self) -> None:
        self._keys: tuple[str, ...] = ()
        self._first: Tensor | None = None

    def observe(self, step: int, terms: dict[str, Tensor]) -> None:
        """Device-side only: remembers `step` for each term that is not finite now and was finite before."""
        keys = tuple(terms)
        values = torch.stack([terms[k].detach().float().reshape(()) for k in keys])
        if keys != self._keys:
            self.check()  # a new set of terms: settle the old one first (rare: never within a run)
            self._keys, self._first = keys, torch.full((len(keys),), NEVER, dtype=torch.long, device=values.device)
        now = torch.where(torch.isfinite(values), NEVER, step)
        self._first = torch.minimum(self._first, now)

    def first_bad(self) -> tuple[int, list[str]] | None:
        """(first step, the terms not finite at it), or None: one host read."""
        if self._first is None:
            return None
        first = self._first.tolist()
        step = min(first)
        if step == NEVER:
            return None
        return step, [k for k, s in zip(self._keys, first) if s == step]

    def check(self) -> None:
        bad = self.first_bad()
        if bad is not None:
            raise diverged(*bad)


def diverged(step: int, terms: list[str]) -> DivergenceError:
    names = ", ".join(t.removeprefix("loss/") for t in terms) or "a loss term"
    return DivergenceError(
        f"training diverged: {names} not finite at step {step}; nothing from that step on was saved (lower "
        "optim.lr, check the data, resume from the last checkpoint, or set train.nonfinite=skip)"
    )


class FiniteGate:
    """train.nonfinite=skip: `gate(group, loss)` says whether the update of "G" or "D" may run.

    `all_ranks_finite` turns this rank's verdict into every rank's (an all-reduce in the distributed
    trainer; the identity in one process). More than `max_consecutive` skipped steps in a row stop
    the run: a model whose weights are no longer finite never recovers by skipping.
    """

    def __init__(self, max_consecutive: int, all_ranks_finite: Callable[[bool], bool] = lambda ok: ok):
        self.max_consecutive = max_consecutive
        self.all_ranks_finite = all_ranks_finite
        self.skipped = {"G": 0, "D": 0}
        self.consecutive = 0  # steps in a row with a skipped update
        self._skips_before = 0

    def __call__(self, group: str, loss: Tensor) -> bool:
        ok = self.all_ranks_finite(bool(torch.isfinite(loss.detach()).all()))
        if not ok:
            self.skipped[group] += 1
        return ok

    def end_step(self, step: int) -> None:
        """Called after each step; counts consecutive steps in which an update was skipped."""
        total = sum(self.skipped.values())
        self.consecutive = self.consecutive + 1 if total > self._skips_before else 0
        self._skips_before = total
        if self.consecutive > self.max_consecutive:
            raise DivergenceError(
                f"training diverged: {self.consecutive} steps in a row up to step {step} had non-finite losses "
                f"(train.nonfinite=skip skipped {self.skipped['G']} generator and {self.skipped['D']} "
                "discriminator updates in all); lower optim.lr or resume from the last checkpoint"
            )

    def metrics(self) -> dict[str, float]:
        return {"guard/skipped_G": float(self.skipped["G"]), "guard/skipped_D": float(self.skipped["D"])}


def close_step(step: int, terms: dict, watch: NonFiniteWatch, gate: "FiniteGate | None") -> None:
    """After each step, in both trainers: train.nonfinite=stop records the loss terms (checked once
    per log window); skip ends the step of the gate that vetoed its non-finite updates."""
    if gate is None:
        watch.observe(step, terms)
    else:
        gate.end_step(step)
