"""The three splits of a data root, and the manifest that holds the validation split.

A root in the CycleGAN layout (trainA/ trainB/ testA/ testB/) has these splits:

    train   trainA/, trainB/ less the validation names (all of them where the root has no manifest)
    val     the validation names of trainA/ and trainB/ (paired where a name is in both)
    test    testA/, testB/ (what results are reported on; selection never reads it)

The validation split is a manifest, `<root>/splits.json`, written by `crossnet data split ROOT` and
by `crossnet data prepare`: every 10th name (by sorted name) of trainA/ and trainB/ together, so that
a name both domains have is held out of both. No image is moved or rewritten.
"""

from __future__ import annotations

import json
from typing import Sequence

from fsspec import AbstractFileSystem

from crossnet_dist.data.errors import DatasetError
from crossnet_dist.data.listing import list_image_keys
from crossnet_dist.storage import RetryPolicy, call_with_retries, display_url, join

MANIFEST = "splits.json"
MANIFEST_FORMAT = "crossnet-dist/splits"
VAL_EVERY = 10
SPLITS = ("train", "val", "test")
_FOLDERS = {"train": "train", "val": "train", "test": "test"}  # the folder prefix each split reads


class NoValidationSplitError(DatasetError):
    """split=val on a root whose manifest is missing."""


def split_folder(root: str, split: str, domain: str) -> str:
    """The folder a split's images of `domain` ("a" or "b") live in: val lives in train<A|B>/."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if domain not in ("a", "b"):
        raise ValueError(f"domain must be 'a' or 'b', got {domain!r}")
    return join(root, f"{_FOLDERS[split]}{domain.upper()}")


def relative_name(folder: str, key: str) -> str:
    return key[len(folder.rstrip("/")) + 1 :]


def choose_val_names(names_a: list[str], names_b: list[str], every: int = VAL_EVERY) -> list[str]:
    """Every `every`-th name of both domains' training names together, sorted (a pair's name once)."""
    names = sorted(set(names_a) | set(names_b))
    return [name for i, name in enumerate(names) if i % every == 0]


def read_val_names(fs: AbstractFileSystem, root: str, policy: RetryPolicy) -> frozenset[str] | None:
    """The validation names of the root's manifest, or None when it has none."""
    path = join(root, MANIFEST)
    url = display_url(fs, path)
    try:
        data = call_with_retries(lambda: fs.cat_file(path), policy, url)
    except (FileNotFoundError, NotADirectoryError):  # the root may be a file: listing says so, naming it
        return None
    try:
        manifest = json.loads(data)
        if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("val"), list):
            raise ValueError(f"not a {MANIFEST_FORMAT} manifest")
        names = manifest["val"]
        if not all(isinstance(name, str) and name for name in names):
            raise ValueError("'val' must be a list of file names")
    except (ValueError, AttributeError) as err:
        raise DatasetError(f"{url}: unreadable split manifest ({err}); rewrite it with `crossnet data split "
                           f"{display_url(fs, root)} --force`") from None
    return frozenset(names)


def split_image_keys(
    fs: AbstractFileSystem, root: str, split: str, domains: Sequence[str], policy: RetryPolicy, max_images: int = 0
) -> dict[str, list[str]]:
    """{domain: sorted keys of its images of `split`} (see the module docstring); the first `max_images`
    of each if > 0. Only the split's own folders and (once) the manifest are read."""
    if split == "test":
        return {d: list_image_keys(fs, split_folder(root, split, d), policy, max_images) for d in domains}
    val = read_val_names(fs, root, policy)
    if val is None and split == "val":
        raise NoValidationSplitError(
            f"{display_url(fs, root)} has no validation split ({MANIFEST}); make one with "
            f"`crossnet data split {display_url(fs, root)}` (every {VAL_EVERY}th training name, no image moved)"
        )
    found = {}
    for domain in domains:
        folder = split_folder(root, split, domain)
        keys = list_image_keys(fs, folder, policy)
        if val is not None:
            keep = split == "val"
            keys = [key for key in keys if (relative_name(folder, key) in val) == keep]
        if not keys:
            raise DatasetError(f"{display_url(fs, folder)}: no images of split {split!r} (the {MANIFEST} manifest "
                               f"holds {'every' if split == 'train' else 'none'} of them)")
        found[domain] = keys[:max_images] if max_images > 0 else keys
    return found


def training_names(fs: AbstractFileSystem, root: str, policy: RetryPolicy) -> dict[str, list[str]]:
    """{domain: the names in trainA/ or trainB/}, val included (the val split is drawn from them)."""
    names = {}
    for domain in ("a", "b"):
        folder = split_folder(root, "train", domain)
        names[domain] = [relative_name(folder, key) for key in list_image_keys(fs, folder, policy)]
    return names


def write_val_split(
    fs: AbstractFileSystem, root: str, policy: RetryPolicy, names: dict[str, list[str]], every: int = VAL_EVERY,
    force: bool = False,
) -> tuple[list[str], bool]:
    """Writes the root's manifest from its training names (`training_names`); returns (val names, written).
    A root that has one keeps it unless `force` (models trained on it would otherwise have seen the new val)."""
    existing = read_val_names(fs, root, policy) if not force else None
    if existing is not None:
        return sorted(existing), False
    val = choose_val_names(names["a"], names["b"], every)
    manifest = {"format": MANIFEST_FORMAT, "version": 1, "val_every": every,
                "rule": f"every {every}th name of trainA/ and trainB/ together, by sorted name", "val": val}
    path = join(root, MANIFEST)
    body = (json.dumps(manifest, indent=1) + "\n").encode()
    call_with_retries(lambda: fs.pipe_file(path, body), policy, display_url(fs, path))
    return val, True


def val_counts(names: dict[str, list[str]], val: list[str]) -> dict[str, int]:
    """Images per domain of the val split and how many of them are pairs (the name in both), from the
    training names (`training_names`)."""
    present = {domain: set(names[domain]) & set(val) for domain in ("a", "b")}
    return {"valA": len(present["a"]), "valB": len(present["b"]), "pairs": len(present["a"] & present["b"])}
