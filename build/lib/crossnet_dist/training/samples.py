"""Sample grids: one row per input image, columns input | translation | reconstruction."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image


@torch.no_grad()
def save_sample_grid(method, x_a: torch.Tensor, x_b: torch.Tensor, path: str | Path) -> Path:
    was_training = method.training
    method.eval()
    try:
        columns = method.sample_columns(x_a, x_b)
    finally:
        method.train(was_training)
    rows = []
    for domain in ("a", "b"):
        cols = columns[domain]
        for i in range(cols[0].shape[0]):
            rows.extend(c[i] for c in cols)
    n_cols = len(columns["a"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = (torch.stack(rows).float().cpu() + 1) / 2
    save_image(grid, path, nrow=n_cols, padding=2, pad_value=1.0)
    return path
