"""LossWindow: window means of loss terms, read with one sync per window."""

import pytest
import torch

from crossnet_dist.training.loss_window import LossWindow


def test_means_over_the_window_and_reset():
    window = LossWindow()
    assert window.means() == {}
    window.add({"loss/G": torch.tensor(1.0, requires_grad=True) * 2, "loss/D": torch.tensor(0.5, dtype=torch.float64)})
    window.add({"loss/G": torch.tensor(4.0), "loss/D": torch.tensor(1.5)})
    assert window.steps == 2
    assert window.means() == pytest.approx({"loss/G": 3.0, "loss/D": 1.0})
    assert all(not t.requires_grad and t.dtype == torch.float32 for t in window.sums.values())
    window.reset()
    assert window.steps == 0 and window.means() == {}


def test_adding_reads_nothing_back_from_the_tensors(monkeypatch):
    """add() never converts to Python numbers: on a GPU each conversion is a host-device sync."""
    window = LossWindow()
    calls = []
    real_item, real_float = torch.Tensor.item, torch.Tensor.__float__
    monkeypatch.setattr(torch.Tensor, "item", lambda self: calls.append("item") or real_item(self))
    monkeypatch.setattr(torch.Tensor, "__float__", lambda self: calls.append("float") or real_float(self))
    for step in range(5):
        window.add({"loss/a": torch.tensor(float(step)), "loss/b": torch.tensor(1.0)})
    assert calls == []
    assert window.means() == {"loss/a": 2.0, "loss/b": 1.0}
