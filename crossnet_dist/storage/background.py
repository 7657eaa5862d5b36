"""A local S3 server that outlives the command that started it (`crossnet storage up|down|status`).

Its state (pid, endpoint, credentials, data dir) is kept in `<state_dir>/server.json`.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from crossnet_dist.storage.server import S3Server, S3ServerError

DEFAULT_STATE_DIR = Path(".cache/storage")
STATE_FILE = "server.json"


def state_path(state_dir: str | Path = DEFAULT_STATE_DIR) -> Path:
    return Path(state_dir) / STATE_FILE


def read_state(state_dir: str | Path = DEFAULT_STATE_DIR) -> dict[str, Any] | None:
    path = state_path(state_dir)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise S3ServerError(f"{path}: unreadable server state ({err}); remove it and check for a stray server") from None


def server_up(
    state_dir: str | Path = DEFAULT_STATE_DIR,
    backend: str = "seaweedfs",
    data_dir: str | Path | None = None,
    buckets: tuple[str, ...] = (),
    fresh: bool = False,
) -> dict[str, Any]:
    """Starts a detached server and records it; refuses if the recorded one is still running.

    A server this state folder recorded and `server_down` stopped comes back as it was (same
    endpoint and ports, credentials and objects), unless `fresh`."""
    state = read_state(state_dir)
    if state is not None and state.get("pid") and pid_alive(state["pid"]):
        raise S3ServerError(f"a {state['backend']} server is already up at {state['endpoint_url']} (pid {state['pid']}); "
                            f"run `crossnet storage down` first")
    previous = state if state is not None and not fresh and state["backend"] == backend else None
    if previous is not None:
        data_dir = data_dir or previous["data_dir"]
        server = S3Server(data_dir, backend=backend, buckets=buckets, detach=True, key=previous["key"],
                          secret=previous["secret"], ports=previous["ports"]).start(attempts=1)
    else:
        data_dir = Path(data_dir) if data_dir is not None else Path(state_dir) / "data"
        server = S3Server(data_dir, backend=backend, buckets=buckets, detach=True).start()
    state = {
        "backend": backend,
        "pid": server.pid,
        "endpoint_url": server.endpoint_url,
        "ports": server.ports,
        "key": server.key,
        "secret": server.secret,
        "region": server.region,
        "data_dir": str(server.data_dir),
        "log": str(server.log_path),
        "started_at": time.time(),
    }
    _write_state(state_dir, state)
    return state


def _write_state(state_dir: str | Path, state: dict[str, Any]) -> None:
    path = state_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def server_down(
    state_dir: str | Path = DEFAULT_STATE_DIR, timeout_s: float = 15.0, forget: bool = False
) -> dict[str, Any] | None:
    """Stops the recorded server (SIGTERM, then SIGKILL); None if none was recorded. The record stays
    (marked stopped, pid null) so that `server_up` can bring the same server back; `forget` drops it."""
    state = read_state(state_dir)
    if state is None:
        return None
    pid = state.get("pid")
    if pid and pid_alive(pid) and _is_server_process(pid, state["backend"]):
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout_s):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, timeout_s)
    if forget:
        state_path(state_dir).unlink(missing_ok=True)
    else:
        _write_state(state_dir, {**state, "pid": None, "stopped_at": time.time()})
    return state


def server_status(state_dir: str | Path = DEFAULT_STATE_DIR) -> dict[str, Any] | None:
    """The recorded state plus `alive`; None if no server was recorded."""
    state = read_state(state_dir)
    if state is None:
        return None
    pid = state.get("pid")
    return {**state, "alive": bool(pid) and pid_alive(pid) and _is_server_process(pid, state["backend"])}


def env_lines(state: dict[str, Any]) -> list[str]:
    return [
        f"export AWS_ENDPOINT_URL={state['endpoint_url']}",
        f"export AWS_ACCESS_KEY_ID={state['key']}",
        f"export AWS_SECRET_ACCESS_KEY={state['secret']}",
        f"export AWS_DEFAULT_REGION={state['region']}",
    ]


def pid_alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_server_process(pid: int, backend: str) -> bool:
    """Guards against a recycled pid: the process must be the server binary."""
    binary = {"seaweedfs": "weed", "rclone": "rclone"}.get(backend, backend)
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return True  # no /proc (not Linux): trust the pid
    return Path(argv0).name == binary


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def _reap(pid: int) -> None:
    """Collects the exit status if the server is our own child (started in this process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
