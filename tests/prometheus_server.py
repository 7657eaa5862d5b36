"""The real Prometheus (Debian's package) on 127.0.0.1, run from the shipped infra/prometheus/prometheus.yml
with only the scrape interval and the endpoint's port changed for the test; series are read back
through Prometheus' own HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import yaml

from tests.helpers import REPO

SHIPPED_CONFIG = REPO / "infra" / "prometheus" / "prometheus.yml"


def test_config(serve_target: str | None) -> dict:
    """The shipped config scraping every second; the endpoint job points at `serve_target` (host:port),
    or is left out when no endpoint runs."""
    config = yaml.safe_load(SHIPPED_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] == "crossnet-serve":
            if serve_target is None:
                continue
            job["static_configs"][0]["targets"] = [serve_target]
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


@contextmanager
def prometheus(serve_target: str | None = None):
    """Yields a query(expr, timeout_s) function: the first non-empty instant-query result, polled."""
    from crossnet_dist.ports import free_port

    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: `make setup` installs the Debian package prometheus"
    work = Path(tempfile.mkdtemp(prefix="crossnet-prometheus-"))
    (work / "prometheus.yml").write_text(yaml.safe_dump(test_config(serve_target)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=open(work / "prometheus.log", "wb"))

    def get(path: str) -> dict:
        with urllib.request.urlopen(base + path, timeout=5) as response:
            return json.loads(response.read())

    def query(expr: str, timeout_s: float = 60) -> list[dict]:
        deadline, result = time.time() + timeout_s, []
        while time.time() < deadline and not result:
            result = get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["data"]["result"]
            if not result:
                time.sleep(0.5)
        return result

    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/-/ready", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, (work / "prometheus.log").read_text()[-2000:]
                time.sleep(0.2)
        query.targets = lambda: get("/api/v1/targets")["data"]["activeTargets"]
        yield query
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
