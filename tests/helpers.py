"""Shared test helpers: a tiny real image set and tiny configs."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from crossnet_dist.config import load_config

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "jobs" / "configs" / "tiny.yaml"


def sample_photo(name: str) -> Image.Image:
    """The two photos scikit-learn ships (china.jpg, flower.jpg): real images with no download."""
    import sklearn.datasets

    return Image.open(Path(sklearn.datasets.__file__).parent / "images" / name).convert("RGB")


def photo_crops(name: str, count: int, size: int, seed: int = 0) -> list[Image.Image]:
    """`count` random size x size crops of a downscaled sklearn sample photo."""
    photo = sample_photo(name).resize((160, 107), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        x = int(rng.integers(0, photo.width - size))
        y = int(rng.integers(0, photo.height - size))
        crops.append(photo.crop((x, y, x + size, y + size)))
    return crops


def write_tiny_dataset(root: Path, n_train: int = 8, n_test: int = 4, size: int = 36) -> Path:
    """CycleGAN layout from real photos: domain A = china.jpg crops, domain B = flower.jpg crops."""
    for domain, photo in (("A", "china.jpg"), ("B", "flower.jpg")):
        crops = photo_crops(photo, n_train + n_test, size, seed=ord(domain))
        for split, part in (("train", crops[:n_train]), ("test", crops[n_train:])):
            folder = root / f"{split}{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(part):
                image.save(folder / f"{domain.lower()}_{i:03d}.png")
    return root


def tiny_batches(count: int, batch_size: int = 4, size: int = 32) -> list[dict[str, torch.Tensor]]:
    """A fixed list of (a, b) batches from the photo crops, in [-1, 1]."""
    from crossnet_dist.images import pil_to_tensor

    a = torch.stack([pil_to_tensor(im) for im in photo_crops("china.jpg", batch_size * count, size, seed=1)])
    b = torch.stack([pil_to_tensor(im) for im in photo_crops("flower.jpg", batch_size * count, size, seed=2)])
    return [{"a": a[i : i + batch_size], "b": b[i : i + batch_size]} for i in range(0, len(a), batch_size)]


def config_from(yaml: Path, tmp_path: Path | None = None, *overrides: str):
    """A config from `yaml` with the progress bar off and, given tmp_path, the run under it."""
    extra = [f"train.out_dir={tmp_path / 'run'}"] if tmp_path is not None else []
    return load_config(yaml, ["train.progress=false", *extra, *overrides])


@functools.lru_cache(maxsize=1)
def random_vgg19_file() -> Path:
    """A randomly initialised VGG-19 (the real shape, seeded) in torchvision's vgg19 file format, written
    once per test process: pretrained weights cannot be downloaded here, so cascaded tests load this."""
    import atexit
    import shutil
    import tempfile

    from crossnet_dist.networks.vgg import VGG19Features

    generator_state = torch.get_rng_state()
    torch.manual_seed(0)
    features = VGG19Features().features.state_dict()
    torch.set_rng_state(generator_state)
    folder = tempfile.mkdtemp(prefix="crossnet-test-vgg-")
    atexit.register(shutil.rmtree, folder, True)  # 50 MB: removed when the test process ends
    path = Path(folder) / "vgg19-random.pth"
    torch.save({f"features.{k}": v for k, v in features.items()}, path)
    return path


def cascaded_test_overrides() -> list[str]:
    """What every cascaded test config adds: the random VGG-19 above as model.cascaded.vgg_weights."""
    return [f"model.cascaded.vgg_weights={random_vgg19_file()}"]


def tiny_config(tmp_path: Path | None = None, *overrides: str):
    return config_from(TINY_CONFIG, tmp_path, *overrides)


def has_grad(module: torch.nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
