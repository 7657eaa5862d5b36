"""Features cached on disk by content hash: an image set is run through a network once.

The key hashes the extractor's fingerprint (network, weights file) and the exact uint8 pixels
of every image in order, so a changed image, order or network is a miss, and an unchanged
set (the real test images, or the translations of an unchanged checkpoint) is a hit.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from crossnet_dist.evaluation.features import FeatureExtractor

log = logging.getLogger(__name__)


def content_key(fingerprint: str, images: Tensor) -> str:
    h = hashlib.sha256(fingerprint.encode())
    h.update(str(tuple(images.shape)).encode())
    h.update(images.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


class FeatureCache:
    """`cache(extractor, images)` returns the features, computing them only on a miss.

    With `folder=None` nothing is stored (every call computes). `hits`/`misses` count calls.
    """

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder else None
        self.hits = 0
        self.misses = 0

    def __call__(self, extractor: FeatureExtractor, images: Tensor) -> Tensor:
        if self.folder is None:
            self.misses += 1
            return extractor(images)
        path = self.folder / extractor.name / f"{content_key(extractor.fingerprint(), images)}.pt"
        if path.is_file():
            try:
                features = torch.load(path, map_location="cpu", weights_only=True)
                if features.shape == (len(images), extractor.dim):
                    self.hits += 1
                    return features
            except Exception as err:  # a damaged cache entry is recomputed, never trusted
                log.warning("ignoring unreadable feature cache entry %s (%s)", path, err)
        self.misses += 1
        features = extractor(images)
        self._store(path, features)
        return features

    @staticmethod
    def _store(path: Path, features: Tensor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(features, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}
