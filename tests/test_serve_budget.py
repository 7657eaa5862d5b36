"""Work per request and per client on a live endpoint: resolution=full has its own pixel limit, and a
client that spent its replica time gets 429 while another client is still served."""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported (NOTES-stack.md)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local tests only

import pytest  # noqa: E402

from tests.helpers import tiny_batches, tiny_config  # noqa: E402
from tests.serve_http import image_bytes, post  # noqa: E402

pytestmark = pytest.mark.timeout(300)
MAX_FULL_PIXELS = 128 * 128
RATE, BURST = 0.5, 0.3  # replica seconds per second, and at once


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    import ray

    from crossnet_dist.config import load_config
    from crossnet_dist.serving.server import start_endpoint, stop_endpoint
    from crossnet_dist.training.loop import Trainer

    tmp = tmp_path_factory.mktemp("budget-model")
    Trainer(tiny_config(tmp, "train.max_steps=1")).fit(tiny_batches(1))
    from crossnet_dist.ports import free_port

    cfg = load_config(None, ["serve.topology=single", "serve.cpus_per_replica=0.5", f"serve.port={free_port()}",
                             f"serve.max_full_pixels={MAX_FULL_PIXELS}", f"serve.client_replica_s_per_s={RATE}",
                             f"serve.client_burst_s={BURST}", "serve.trust_forwarded_for=true"]).serve
    running = start_endpoint(str(tmp / "run" / "generator.pt"), cfg, num_cpus=2, ready_timeout_s=120)
    try:
        yield running.url
    finally:
        stop_endpoint(running)
        ray.shutdown()


def as_client(address: str) -> dict:
    """The client identity a trusted proxy would pass (a header only: nothing is sent to the address)."""
    return {"X-Forwarded-For": address}


def test_full_resolution_above_its_pixel_limit_is_refused_and_model_resolution_takes_it(endpoint):
    png = image_bytes((200, 100))  # 20,000 px > 128 x 128
    status, _, body = post(f"{endpoint}/translate?direction=a2b&resolution=full", png, headers=as_client("203.0.113.1"))
    answer = json.loads(body)
    assert status == 413 and answer["error"] == "too_many_pixels" and "serve.max_full_pixels" in answer["detail"]
    status, _, _ = post(f"{endpoint}/translate?direction=a2b", png, headers=as_client("203.0.113.1"))
    assert status == 200


def test_a_client_that_spent_its_replica_time_gets_429_and_others_are_still_served(endpoint):
    png = image_bytes((640, 480))  # decoded and resized on each request: milliseconds of replica time
    url = f"{endpoint}/translate?direction=a2b"
    deadline, status, headers, body = time.monotonic() + 120, 200, {}, b""
    sent = 0
    while status == 200 and time.monotonic() < deadline:
        status, headers, body = post(url, png, headers=as_client("203.0.113.7"))
        sent += 1
    assert status == 429, f"no 429 after {sent} requests"
    answer = json.loads(body)
    assert answer["error"] == "rate_limited" and "serve.client_replica_s_per_s" in answer["detail"]
    retry_after = int({k.lower(): v for k, v in headers.items()}["retry-after"])
    assert 1 <= retry_after <= 60
    assert post(url, png, headers=as_client("203.0.113.8"))[0] == 200  # another client
    refused_at = time.monotonic()
    while post(url, png, headers=as_client("203.0.113.7"))[0] == 429:  # refused requests cost nothing
        assert time.monotonic() - refused_at < retry_after + 10  # Retry-After (rounded up) was long enough
        time.sleep(0.2)
