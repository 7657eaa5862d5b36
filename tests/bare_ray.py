"""A Python with Ray and nothing of the project's stack: what a cluster started outside the project's
environment runs. Built offline from this venv: a new venv whose site-packages links only ray[default]
and the distributions it needs (no torch, DeepSpeed, omegaconf, ...)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def ray_closure() -> list:
    """The installed distributions ray[default] needs, transitively (markers evaluated here)."""
    found, todo = {}, [("ray", {"default"})]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if key in found:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:  # an optional or platform-specific one this venv lacks
            continue
        found[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                todo.append((req.name, set(req.extras)))
    return list(found.values())


def make_bare_ray_python(root: Path) -> Path:
    """A venv at `root` seeing only Ray's closure; returns its python."""
    subprocess.run([sys.base_prefix + f"/bin/python{sysconfig.get_python_version()}", "-m", "venv", "--without-pip",
                    str(root)], check=True, timeout=120)
    site = root / "lib" / f"python{sysconfig.get_python_version()}" / "site-packages"
    ours = Path(sysconfig.get_paths()["purelib"])
    for dist in ray_closure():
        for top in {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            link = site / top
            if (ours / top).exists() and not link.exists():
                link.symlink_to(ours / top)
    return root / "bin" / "python"
