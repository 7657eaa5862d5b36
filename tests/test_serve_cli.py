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
    from crossnet_dist.storage.ports import free_port
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
