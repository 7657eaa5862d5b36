"""Data loading throughput: a local S3 server vs local disk (the same images), and both vs the
images per second one CrossNet training step consumes.

    python bench/data_loader.py [--limit 400] [--batch-size 4] [--workers 0 2] [--backend seaweedfs]

Builds the `emoji` data set (or `digits` if the emoji npm tarballs are not cached) in a temporary
folder, uploads it to a local S3 server on 127.0.0.1, then times full epochs of the training
loader from each source after one warm-up epoch. Loops are bounded by --seconds per measurement.
Images/s counts decoded images of both domains (a training sample is one A and one B image).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from crossnet_dist.config import DataConfig, load_config  # noqa: E402
from crossnet_dist.data import build_train_loader  # noqa: E402
from crossnet_dist.data.npm_packages import EMOJI_PACKAGES, default_cache_dir, tarball_path  # noqa: E402
from crossnet_dist.data.prepare import prepare, upload  # noqa: E402
from crossnet_dist.storage import S3Server  # noqa: E402

TINY_MODEL = [
    "model.gen_channels=16", "model.n_encoder_blocks=2", "model.n_translator_blocks=2", "model.disc_channels=16",
]


def loader_rate(root: str, storage: dict, image_size: int, batch_size: int, workers: int, seconds: float) -> tuple[float, int]:
    """(images/s, images timed) over whole epochs after a warm-up epoch (worker start-up excluded)."""
    cfg = OmegaConf.merge(
        OmegaConf.structured(DataConfig),
        {"root": root, "load_size": image_size, "batch_size": batch_size, "num_workers": workers, "storage": storage},
    )
    loader = build_train_loader(cfg, image_size=image_size, seed=0)
    loader.set_epoch(0)
    for _ in loader:
        pass
    images, started, epoch = 0, time.perf_counter(), 1
    while time.perf_counter() - started < seconds and epoch < 50:
        loader.set_epoch(epoch)
        for batch in loader:
            images += 2 * batch["a"].shape[0]
        epoch += 1
    elapsed = time.perf_counter() - started
    del loader
    return images / elapsed, images


def training_rate(image_size: int, batch_size: int, steps: int, seconds: float) -> float:
    """Images/s one tiny-CrossNet step (generator + discriminator forward and backward) consumes."""
    from crossnet_dist.methods import build_method

    cfg = load_config(None, [*TINY_MODEL, f"model.image_size={image_size}", f"data.load_size={image_size}"])
    method = build_method(cfg)
    x_a = torch.rand(batch_size, 3, image_size, image_size) * 2 - 1
    x_b = torch.rand(batch_size, 3, image_size, image_size) * 2 - 1

    def step() -> None:
        out = method.generator_step(x_a, x_b)
        out.loss.backward()
        method.discriminator_step(x_a, x_b, out.fakes).loss.backward()
        method.zero_grad(set_to_none=True)

    step()  # warm-up
    done, started = 0, time.perf_counter()
    while done < steps and (done == 0 or time.perf_counter() - started < seconds):
        step()
        done += 1
    return 2 * batch_size * done / (time.perf_counter() - started)


def build_dataset(folder: Path, limit: int) -> tuple[str, int]:
    """(name, image side) of the data set written to `folder`."""
    cached = all(tarball_path(n, v, default_cache_dir()).is_file() for n, v in EMOJI_PACKAGES.values())
    name, side = ("emoji", 64) if cached else ("digits", 32)
    prepare(name, str(folder), limit=limit)
    return name, side


def measure(limit: int = 400, batch_size: int = 4, image_size: int = 64, workers=(0, 2), backend: str = "seaweedfs",
            seconds: float = 5.0, train_steps: int = 3) -> dict:
    """{"name", "side", "endpoint", "rows": [(workers, disk img/s, S3 img/s, n disk, n S3)], "train": img/s}."""
    with tempfile.TemporaryDirectory(prefix="crossnet-bench-") as tmp:
        local = Path(tmp) / "data"
        name, side = build_dataset(local, limit)
        with S3Server(Path(tmp) / "s3", backend=backend, buckets=["bench"]) as server:
            storage = server.storage_options()
            upload(local, "s3://bench/data", storage)
            rows = []
            for n in workers:
                disk, n_disk = loader_rate(str(local), {}, image_size, batch_size, n, seconds)
                s3, n_s3 = loader_rate("s3://bench/data", storage, image_size, batch_size, n, seconds)
                rows.append((n, disk, s3, n_disk, n_s3))
            endpoint = server.endpoint_url
        train = training_rate(image_size, batch_size, train_steps, seconds * 4)
    return {"name": name, "side": side, "endpoint": endpoint, "rows": rows, "train": train}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=400, help="images per domain in the data set")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to time")
    parser.add_argument("--backend", choices=["seaweedfs", "rclone"], default="seaweedfs")
    parser.add_argument("--seconds", type=float, default=5.0, help="time budget per measurement")
    parser.add_argument("--train-steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    r = measure(args.limit, args.batch_size, args.image_size, args.workers, args.backend, args.seconds, args.train_steps)
    print(f"data set: {r['name']} ({r['side']}px originals, --limit {args.limit}), loaded at {args.image_size}px, "
          f"batch {args.batch_size}; S3: {args.backend} at {r['endpoint']}; {os.cpu_count()} CPUs")
    print()
    print(f"{'workers':>7} | {'disk img/s':>10} | {'S3 img/s':>9} | {'S3/disk':>7} | {'disk/train':>10} | {'S3/train':>8}")
    print("-" * 68)
    train = r["train"]
    for workers, disk, s3, _n_disk, _n_s3 in r["rows"]:
        print(f"{workers:>7} | {disk:>10.0f} | {s3:>9.0f} | {s3 / disk:>7.2f} | {disk / train:>10.1f} | {s3 / train:>8.1f}")
    print(f"\none tiny CrossNet training step (G + D, forward + backward, {args.image_size}px, batch {args.batch_size}) "
          f"consumes {train:.1f} images/s")
    print("S3/train > 1 means the S3 loader feeds training faster than one CPU training process uses the images.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
