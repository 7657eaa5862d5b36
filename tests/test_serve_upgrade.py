"""Zero-downtime model swaps: `crossnet serve --checkpoint NEW --address CLUSTER` on a running
application upgrades it in place while 8 clients keep sending, and not one request fails."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported (NOTES-stack.md)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local tests only

import pytest  # noqa: E402

from tests.helpers import tiny_config  # noqa: E402
from tests.serve_http import image_bytes, post  # noqa: E402
from tests.test_export import write_checkpoint  # noqa: E402

pytestmark = pytest.mark.timeout(240)
CLIENTS = 8


def redeploy(checkpoint, address: str, overrides: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "crossnet_dist", "serve", "--checkpoint", str(checkpoint), "--address", address]
    return subprocess.run([*command, *overrides], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "RAY_ADDRESS": ""})


class Clients:
    """CLIENTS threads posting translations back to back; each answer's status and X-Model-Revision."""

    def __init__(self, url: str):
        self.url, self.body = f"{url}/translate?direction=a2b", image_bytes((48, 40))
        self.answers: list[tuple[int, str, float]] = []  # (status, checkpoint, seconds), in arrival order
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True) for _ in range(CLIENTS)]

    def _send(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                status, headers, _ = post(self.url, self.body, timeout=60)
                checkpoint = {k.lower(): v for k, v in headers.items()}.get("x-model-revision", "")
            except OSError as err:  # a dropped connection counts as a failure
                status, checkpoint = 0, repr(err)
            with self.lock:
                self.answers.append((status, checkpoint, time.perf_counter() - start))

    def wait_for(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.answers)):
                    return True
            time.sleep(0.05)
        return False


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    import ray

    from crossnet_dist.config import load_config
    from crossnet_dist.ports import free_port
    from crossnet_dist.serving.server import start_endpoint, stop_endpoint

    best = tmp_path_factory.mktemp("upgrade") / "best"  # a campaign's best pointer, rewritten by the test
    write_checkpoint(best / "generator.pt", tiny_config(None), seed=1)
    overrides = ["serve.cpus_per_replica=0.5", f"serve.port={free_port()}"]
    endpoint = start_endpoint(str(best), load_config(None, overrides).serve, num_cpus=4)
    try:
        yield endpoint, best, overrides, ray.get_runtime_context().gcs_address
    finally:
        stop_endpoint(endpoint)


def served_model(url: str) -> str:
    from crossnet_dist.serving.server import wait_ready

    return wait_ready(url, None, 30)["model_revision"]


def test_a_new_best_checkpoint_replaces_the_served_one_without_a_failed_request(running):
    endpoint, best, overrides, address = running
    old = served_model(endpoint.url)
    clients = Clients(endpoint.url)
    for thread in clients.threads:
        thread.start()
    try:
        assert clients.wait_for(lambda a: len(a) >= 2 * CLIENTS, 60), "the clients got no answers before the swap"
        write_checkpoint(best / "generator.pt", tiny_config(None), seed=2)  # the campaign found a better one
        upgrade = redeploy(best, address, overrides)
        assert upgrade.returncode == 0, upgrade.stderr[-3000:]
        assert "upgraded application 'crossnet' in place" in upgrade.stdout
        new = served_model(endpoint.url)
        assert new != old
        answered_by_new = lambda a: sum(c == new for _, c, _ in a) >= 2 * CLIENTS  # noqa: E731
        assert clients.wait_for(answered_by_new, 60), (
            f"no answers from the new checkpoint after the upgrade: {Counter((s, c) for s, c, _ in clients.answers)}")
    finally:
        clients.stop.set()
        for thread in clients.threads:
            thread.join(timeout=60)
    answers = clients.answers
    failed = [(status, checkpoint) for status, checkpoint, _ in answers if status != 200]
    assert failed == [], f"{len(failed)} of {len(answers)} requests failed during the swap: {failed[:5]}"
    served = [checkpoint for _, checkpoint, _ in answers]
    first_new = served.index(new)
    assert set(served[:first_new]) == {old}
    # with one replica, Serve stops the old one (after its requests) before the new one runs: requests
    # meanwhile wait in the queue; the longest wait shows the gap
    print(f"swap: {len(answers)} requests, 0 failed, longest {max(s for _, _, s in answers):.2f} s")

