"""The real `crossnet` entry point, run as a subprocess on a tiny real image set."""

import os
import subprocess
import sys

import pytest
from PIL import Image

from tests.helpers import REPO, TINY_CONFIG, write_tiny_dataset


def crossnet(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "crossnet_dist", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    if check and proc.returncode != 0:
        raise AssertionError(f"crossnet {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.mark.timeout(300)
def test_train_then_translate_writes_pngs_and_a_sample_grid(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train=8, n_test=3, size=36)
    run = tmp_path / "run"
    crossnet("train", str(TINY_CONFIG), "--local", f"data.root={data}", f"train.out_dir={run}",
             "train.max_steps=12", "train.sample_every=6", "train.checkpoint_every=6", "train.progress=false")
    assert (run / "generator.pt").is_file()
    assert (run / "samples" / "step_00000012.png").is_file()

    out = tmp_path / "out"
    (data / "testA" / "notes.txt").write_text("not an image, and not picked up from a folder")
    proc = crossnet("translate", "--checkpoint", str(run / "generator.pt"), "--direction", "a2b",
                    str(data / "testA"), "--out", str(out))
    written = sorted(out.glob("*_a2b.png"))
    assert len(written) == 3, proc.stdout
    for path in written:
        source = data / "testA" / path.name.replace("_a2b.png", ".png")
        assert Image.open(path).size == Image.open(source).size  # returned at the input's size

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    proc = crossnet("translate", "--checkpoint", str(run / "generator.pt"), "--direction", "b2a",
                    str(bad), "--out", str(out), check=False)
    assert proc.returncode == 1 and "bad.png: not a readable image" in proc.stderr


def test_errors_name_the_cause(tmp_path):
    proc = crossnet("train", str(TINY_CONFIG), "--local", "optim.lrr=1", check=False)
    assert proc.returncode == 2 and "optim.lrr" in proc.stderr
    truncated = tmp_path / "g.pt"
    truncated.write_bytes(b"PK\x03\x04 nope")
    proc = crossnet("translate", "--checkpoint", str(truncated), "--direction", "a2b", str(tmp_path),
                    "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode == 2 and f"{truncated} is truncated or corrupt" in proc.stderr


@pytest.mark.timeout(300)
def test_a_bad_data_root_is_one_line_naming_it(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    only_a = write_tiny_dataset(tmp_path / "only_a", n_train=2, n_test=1, size=36)
    for folder in only_a.glob("*B"):
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    cases = {tmp_path / "nowhere": "does not exist", a_file: "is a file, not a folder",
             only_a: f"{only_a / 'trainB'}: no images found"}
    for root, cause in cases.items():
        proc = crossnet("train", str(TINY_CONFIG), "--local", f"data.root={root}", f"train.out_dir={tmp_path / 'r'}",
                        check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines()[-1].startswith("crossnet train: error:") and cause in proc.stderr


def test_help_documents_each_subcommand():
    text = crossnet("--help").stdout
    for command in ("train", "translate"):
        assert command in text
        assert "usage: crossnet " + command in crossnet(command, "--help").stdout


@pytest.mark.timeout(300)
def test_sigterm_stops_local_training_after_the_step_with_a_checkpoint_that_resumes(tmp_path):
    import json
    import signal
    import time

    data = write_tiny_dataset(tmp_path / "data", n_train=8, n_test=1, size=36)
    run = tmp_path / "run"
    args = [str(TINY_CONFIG), "--local", f"data.root={data}", f"train.out_dir={run}", "train.log_every=1",
            "train.checkpoint_every=1000", "train.max_steps=1000", "train.progress=false"]
    proc = subprocess.Popen([sys.executable, "-m", "crossnet_dist", "train", *args], cwd=REPO, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 200
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (out, err)
    step = json.loads(metrics.read_text().splitlines()[-1])["step"]
    assert 3 <= step < 1000
    assert f"stopped by SIGTERM after step {step}: checkpoint written" in out and "Traceback" not in err
    assert (run / "checkpoints" / f"step_{step:08d}.pt").is_file() and (run / "generator.pt").is_file()
    resumed = crossnet("train", *args[:-2], f"train.max_steps={step + 1}", "train.progress=false", "--resume")
    assert f"at step {step}" in resumed.stdout and f"done: {step + 1} steps" in resumed.stdout
