"""The package as a user installs it: its declared dependencies match its imports (deptry), and the
wheel, installed into a fresh venv without this source tree, gives a working CLI and imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.timeout(600)


def test_declared_dependencies_match_the_imports():
    result = subprocess.run([sys.executable, "-m", "deptry", "crossnet_dist"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def subpackages() -> list[str]:
    root = REPO / "crossnet_dist"
    return sorted("crossnet_dist" + ("." + ".".join(p.parent.relative_to(root).parts) if p.parent != root else "")
                  for p in root.rglob("__init__.py"))


def test_the_wheel_installs_and_runs_without_the_source_tree(tmp_path):
    source, wheels = tmp_path / "source", tmp_path / "wheels"  # built from a copy: no build/ left in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "crossnet_dist", source / "crossnet_dist", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("crossnet_dist-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # The stack (torch, ray, ...) comes from this environment's site-packages, added as a plain path:
    # its .pth files (this checkout's editable install among them) are not run, so crossnet_dist can
    # only come from the wheel.
    site = Path(subprocess.check_output([str(venv / "bin" / "python"), "-c",
                                         "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True).strip())
    (site / "stack.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                    "-q", str(wheel)], check=True, capture_output=True, timeout=300)
    python, crossnet = str(venv / "bin" / "python"), str(venv / "bin" / "crossnet")
    elsewhere = tmp_path  # not the repository: nothing of the source tree on the path

    def run(*args: str) -> str:
        result = subprocess.run(args, cwd=elsewhere, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
        return result.stdout

    assert run(crossnet, "--version").strip() == "crossnet 0.1.0"
    assert "train" in run(crossnet, "--help") and "--checkpoint" in run(crossnet, "eval", "--help")
    where = run(python, "-c", "import importlib, sys; mods = sys.argv[1:]; [importlib.import_module(m) for m in mods]; "
                "import crossnet_dist; print(crossnet_dist.__file__)", *subpackages())
    assert str(venv) in where and str(REPO) not in where
    packaged = run(python, "-c", "from crossnet_dist.config import load_config; c = load_config('emoji'); "
                   "print(c.method, c.model.image_size)")
    assert packaged.split() == ["crossnet", "32"]  # a packaged config by name, from any folder
    assert "index.html" in run(python, "-c", "import importlib.resources as r; "
                               "print(sorted(p.name for p in r.files('crossnet_dist.serving').joinpath('static').iterdir()))")
