"""bench/gpu_check.py, the one command the GPU path is checked with, kept from rotting on CPUs:
--cpu-smoke runs every part but compile with tiny networks, importing only what a GPU machine gets
(its own PyTorch plus the wheels of bench/gpu_bundle.txt); without a GPU the plain command skips
every part with one line each."""

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement

from tests.helpers import REPO


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def gpu_machine_site(folder: Path) -> Path:
    """A site folder with only what the GPU machine has: PyTorch with its requirements, and the wheels
    of bench/gpu_bundle.txt with theirs, linked from this environment (Ray, s3fs, fastapi, ... absent)."""
    lines = (REPO / "bench" / "gpu_bundle.txt").read_text().splitlines()
    allowed, todo = set(), ["torch", *(Requirement(line).name for line in lines if line and not line.startswith("#"))]
    while todo:
        name = norm(todo.pop())
        if name in allowed:
            continue
        allowed.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo += [r.name for r in map(Requirement, requires) if r.marker is None or r.marker.evaluate({"extra": ""})]
    folder.mkdir()
    for dist in md.distributions():
        if norm(dist.metadata["Name"]) not in allowed:
            continue
        for top in {Path(str(f)).parts[0] for f in dist.files or []} - {"..", "__pycache__"}:
            source = Path(dist.locate_file(top))
            if source.exists() and not top.endswith(".pth") and not (folder / top).exists():
                (folder / top).symlink_to(source)
    return folder


@pytest.mark.timeout(300)
def test_every_cpu_part_runs_with_only_the_gpu_machines_packages(tmp_path):
    out = tmp_path / "gpu"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{gpu_machine_site(tmp_path / 'site')}"}
    no_site = [sys.executable, "-S"]  # no site-packages: only PYTHONPATH and the standard library
    assert subprocess.run([*no_site, "-c", "import ray"], env=env, capture_output=True).returncode != 0
    proc = subprocess.run([*no_site, "bench/gpu_check.py", "--cpu-smoke", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert not result["ray_imported"]
    parts = result["parts"]
    assert not [name for name, part in parts.items() if "error" in part], parts
    steps = parts["steps"]["rows"]
    assert {(r["method"], r["batch"], r["variant"]) for r in steps} == {
        (m, b, v) for m in ("crossnet", "cyclegan") for b in (1, 2) for v in ("fp32", "bf16", "bf16+channels_last")}
    assert all(r["finite"] and r["step_ms"] > 0 and 0 < r["mfu"] for r in steps)
    ds = parts["deepspeed"]
    assert len(ds["fp32"]["G_total"]) == len(ds["bf16"]["G_total"]) == 20 and ds["fp32"]["finite"] and ds["bf16"]["finite"]
    assert set(ds["relative_difference_last5"]) == {"G_total", "D_total"}
    assert len(parts["translate"]["rows"]) == 6 and parts["translate"]["untiled"]["largest_side"] == 128
    assert parts["translate"]["tiled"]["side"] == 256 and parts["translate"]["tiled"]["seconds"] > 0
    assert "| crossnet | 2 | bf16+channels_last |" in (out / "gpu_check.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the plain command would run")
@pytest.mark.timeout(60)
def test_without_a_gpu_each_part_is_skipped_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "bench/gpu_check.py", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["peak", "steps", "deepspeed", "translate", "compile"]
    assert all("skipped: no CUDA device" in line for line in lines)
