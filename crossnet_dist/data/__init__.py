"""Unpaired image data streamed from object storage or local disk (CycleGAN layout).

    loader = build_train_loader(cfg.data, image_size=cfg.model.image_size, seed=cfg.train.seed)
    loader.dataset.set_epoch(epoch, start_index=samples_already_consumed)
    for batch in loader:            # {"a": [B,3,S,S], "b": [B,3,S,S], "stats": DataStats}
        ...
    loader.stats                    # DataStats totals of this process (read, skipped, retries)

Names are imported on first use, so that `crossnet storage ...` does not pay for torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "DataStats": "crossnet_dist.data.stats",
    "DatasetError": "crossnet_dist.data.errors",
    "StreamingLoader": "crossnet_dist.data.loaders",
    "build_eval_loader": "crossnet_dist.data.loaders",
    "build_train_loader": "crossnet_dist.data.loaders",
    "ImageFolderStream": "crossnet_dist.data.streams",
    "UnpairedImageStream": "crossnet_dist.data.streams",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'crossnet_dist.data' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
