"""The `emoji` data set: the same emoji drawn by two vendors, 64x64 RGBA PNGs from the
emoji-datasource npm packages. Domain A = Google, domain B = Twitter (Twemoji); only emoji
both vendors draw; every 10th (by sorted name) is held out as the test split."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Iterator

from crossnet_dist.data.npm_packages import EMOJI_PACKAGES, fetch_tarball
from crossnet_dist.data.subsets import evenly_spaced, is_test_index

SIZE = 64


def vendor_images(tarball: Path, vendor: str) -> dict[str, bytes]:
    """name -> PNG bytes of package/img/<vendor>/64/*.png inside the npm tarball."""
    prefix = f"package/img/{vendor}/{SIZE}/"
    images: dict[str, bytes] = {}
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if member.isfile() and member.name.startswith(prefix) and member.name.endswith(".png"):
                images[member.name[len(prefix) :]] = archive.extractfile(member).read()  # type: ignore[union-attr]
    if not images:
        raise ValueError(f"{tarball}: no {prefix}*.png inside; has the package layout changed?")
    return images


def emoji_items(cache_dir: str | Path | None = None, limit: int = 0) -> Iterator[tuple[str, bytes]]:
    """(relative key, PNG bytes) in the trainA/trainB/testA/testB layout; `limit` emoji at most,
    spread evenly over the sorted names."""
    by_vendor = {}
    for vendor, (package, version) in EMOJI_PACKAGES.items():
        by_vendor[vendor] = vendor_images(fetch_tarball(package, version, cache_dir), vendor)
    names = sorted(set(by_vendor["google"]) & set(by_vendor["twitter"]))
    for i, name in enumerate(evenly_spaced(names, limit)):
        split = "test" if is_test_index(i) else "train"
        yield f"{split}A/{name}", by_vendor["google"][name]
        yield f"{split}B/{name}", by_vendor["twitter"][name]
