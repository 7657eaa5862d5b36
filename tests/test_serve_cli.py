"""`crossnet serve` as a user runs it: a subprocess with its own local Ray on 127.0.0.1, used through
`crossnet translate --endpoint`, stopped with Ctrl-C (SIGINT) leaving no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from PIL import Image

from tests.helpers import REPO, photo_crops, tiny_batches, tiny_config

pytestmark = pytest.mark.timeout(150)


def session_processes(sid: int) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid:
                found.append(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            pass
    return found


def test_crossnet_serve_runs_until_ctrl_c(tmp_path):
    from crossnet_dist.ports import free_port
    from crossnet_dist.training.loop import Trainer

    Trainer(tiny_config(tmp_path, "train.max_steps=2")).fit(tiny_batches(1))
    port = free_port()
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "crossnet_dist", "serve", "--checkpoint", str(tmp_path / "run"), "--port", str(port),
         "serve.cpus_per_replica=0.5"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while "press Ctrl-C" not in (tmp_path / "serve.log").read_text():
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "crossnet serve did not come up in 90 s"
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}"
        assert b"<title>" in urllib.request.urlopen(url + "/", timeout=10).read()
        inputs = tmp_path / "inputs"
        inputs.mkdir()
        for i, crop in enumerate(photo_crops("china.jpg", 2, 28)):
            crop.save(inputs / f"crop{i}.png")
        result = subprocess.run(
            [sys.executable, "-m", "crossnet_dist", "translate", "--endpoint", url, "--direction", "a2b", str(inputs),
             "--out", str(tmp_path / "out")], cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "wrote 2 images" in result.stdout
        assert Image.open(tmp_path / "out" / "crop0_a2b.png").size == (28, 28)

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0
        assert "stopped" in (tmp_path / "serve.log").read_text()
        deadline = time.monotonic() + 20
        while session_processes(server.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not session_processes(server.pid), "processes of crossnet serve outlived it"
    finally:
        if server.poll() is None or session_processes(server.pid):
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


def _bad_checkpoints(tmp_path):
    from crossnet_dist.training.loop import Trainer

    good = tmp_path / "good"
    Trainer(tiny_config(good, "train.max_steps=1")).fit(tiny_batches(1))
    data = (good / "run" / "generator.pt").read_bytes()
    cases = {"missing": (tmp_path / "nowhere.pt", "not found"), "empty": (tmp_path / "empty.pt", "is empty"),
             "truncated": (tmp_path / "truncated.pt", "truncated or corrupt"),
             "not_a_checkpoint": (tmp_path / "text.pt", "truncated or corrupt")}
    cases["empty"][0].write_bytes(b"")
    cases["truncated"][0].write_bytes(data[: len(data) // 2])
    cases["not_a_checkpoint"][0].write_text("hello")
    return cases


def test_bad_checkpoints_fail_fast_with_one_line_naming_file_and_cause(tmp_path, capsys, monkeypatch):
    """Every bad checkpoint through the CLI's own entry point (in this process: no Ray may start)."""
    import ray

    from crossnet_dist.cli import main

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out, inputs = tmp_path / "out", tmp_path / "in.png"
    photo_crops("china.jpg", 1, 28)[0].save(inputs)
    for name, (path, cause) in _bad_checkpoints(tmp_path).items():
        for command in (["serve", "--checkpoint", str(path)], ["translate", "--checkpoint", str(path), "--direction",
                                                                 "a2b", str(inputs), "--out", str(out)]):
            code = main(command)
            captured = capsys.readouterr()
            lines = captured.err.strip().splitlines()
            assert code == 2, (name, command[0], captured.err[-2000:])
            assert len(lines) == 1 and str(path) in lines[0] and cause in lines[0], (name, command[0], lines)
            assert "Traceback" not in captured.err and not ray.is_initialized(), (name, command[0])


def test_a_bad_checkpoint_ends_the_crossnet_process_with_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    path, cause = _bad_checkpoints(tmp_path)["truncated"]
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "crossnet_dist", "serve", "--checkpoint", str(path)], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - start
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and str(path) in lines[0] and cause in lines[0], result.stderr
    assert "Started a local Ray" not in result.stderr + result.stdout
    assert took < 30, took  # interpreter + torch import; no deployment wait


def test_the_serve_check_itself_takes_under_2_s(tmp_path):
    from crossnet_dist.checkpoints.files import CheckpointError
    from crossnet_dist.config import load_config
    from crossnet_dist.serving.cli import check_checkpoint

    serve_cfg = load_config().serve
    for name, (path, cause) in _bad_checkpoints(tmp_path).items():
        start = time.monotonic()
        with pytest.raises(CheckpointError, match=cause):
            check_checkpoint(str(path), serve_cfg)
        assert time.monotonic() - start < 2, name
