"""The Ray Serve endpoint, end to end, on ONE local Ray + Serve instance for the whole module.

Three applications share that instance (one Serve HTTP proxy on 127.0.0.1):
- "/"        the main app, loading its checkpoint from an s3:// best-pointer folder (SeaweedFS);
- "/secure"  the same model behind a bearer token;
- "/tight"   one replica, no batching, 1 ongoing + 1 queued request: the backpressure (503) case;
- "/single"  as tight, in topology single (the ingress replica holds the model: one hop less).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported (NOTES-stack.md)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local tests only

import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from tests.helpers import tiny_batches, tiny_config  # noqa: E402
from tests.serve_http import (  # noqa: E402
    PNG_SIGNATURE,
    batch_size_histogram,
    get,
    image_bytes,
    multipart,
    png_with_header,
    post,
    scrape,
)

pytestmark = pytest.mark.timeout(120)

TOKEN = "test-token-8f3a"


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from crossnet_dist.training.loop import Trainer

    tmp = tmp_path_factory.mktemp("serve-model")
    Trainer(tiny_config(tmp, "train.max_steps=2")).fit(tiny_batches(2))
    return tmp / "run" / "generator.pt"


@pytest.fixture(scope="module")
def s3_best_pointer(s3_server, checkpoint) -> str:
    """A campaign's best/ folder in the bucket: generator.pt + metric/config JSON."""
    from crossnet_dist.storage import join, opened
    from tests.conftest import S3_TEST_BUCKET

    url = f"s3://{S3_TEST_BUCKET}/serve-campaign/best"
    with opened(url, s3_server.storage_options()) as (fs, root):
        fs.put_file(str(checkpoint), join(root, "generator.pt"))
        fs.pipe_file(join(root, "metric.json"), json.dumps({"name": "fid", "value": 42.5, "trial": "t7"}).encode())
        fs.pipe_file(join(root, "config.json"), json.dumps({"loss": {"crossnet": {"gan": 1.0}}}).encode())
    return url + "/"


def _serve_cfg(*overrides: str):
    from crossnet_dist.config import load_config

    return load_config(None, ["serve.cpus_per_replica=0.5", *overrides]).serve


@pytest.fixture(scope="module")
def endpoints(checkpoint, s3_best_pointer, s3_server):
    import ray
    from ray import serve
    from ray.serve import RunTarget

    from crossnet_dist.ports import free_port
    from crossnet_dist.serving.deploy import build_application
    from crossnet_dist.serving.server import connect_ray, wait_ready

    storage = [f"serve.storage.{k}={v}" for k, v in s3_server.storage_options().items()]
    main_cfg = _serve_cfg("serve.max_body_bytes=1000000", "serve.batch_wait_timeout_s=0.05",
                          "serve.full_resolution_tile=64", *storage)
    secure_cfg = _serve_cfg(f"serve.token={TOKEN}")
    tight_cfg = _serve_cfg("serve.max_batch_size=1", "serve.max_ongoing_requests=1", "serve.max_queued_requests=1")
    single_cfg = _serve_cfg("serve.max_batch_size=1", "serve.max_ongoing_requests=1", "serve.max_queued_requests=1",
                            "serve.topology=single")
    port = free_port()
    assert connect_ray(num_cpus=8), "expected to start a local Ray (is RAY_ADDRESS set?)"
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run_many([  # deployed together: the replicas start in parallel
            RunTarget(build_application(s3_best_pointer, main_cfg), name="main", route_prefix="/"),
            RunTarget(build_application(str(checkpoint), secure_cfg), name="secure", route_prefix="/secure"),
            RunTarget(build_application(str(checkpoint), tight_cfg), name="tight", route_prefix="/tight"),
            RunTarget(build_application(str(checkpoint), single_cfg), name="single", route_prefix="/single"),
        ])
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, None, 60)
        wait_ready(url + "/secure", TOKEN, 60)
        wait_ready(url + "/tight", None, 60)
        wait_ready(url + "/single", None, 60)
        yield {"main": url, "secure": url + "/secure", "tight": url + "/tight", "single": url + "/single"}
    finally:
        ray.shutdown()  # stops Serve's actors with the rest of this test's local Ray


def test_round_trip_both_directions_keeps_the_input_size(endpoints):
    url = endpoints["main"]
    for size, fmt, content_type in (((50, 37), "PNG", "image/png"), ((81, 64), "JPEG", "image/jpeg")):
        data = image_bytes(size, fmt)
        for direction in ("a2b", "b2a"):
            status, headers, body = post(f"{url}/translate?direction={direction}", data, content_type)
            assert status == 200, body[:300]
            assert headers["content-type"] == "image/png" and body.startswith(PNG_SIGNATURE)
            assert Image.open(io.BytesIO(body)).size == size
    body, content_type = multipart("image", "photo.jpg", image_bytes((40, 30), "JPEG"), "image/jpeg")
    status, _, png = post(f"{url}/translate?direction=b2a", body, content_type)
    assert status == 200 and Image.open(io.BytesIO(png)).size == (40, 30)


def test_each_translation_says_where_its_time_went(endpoints):
    start = time.perf_counter()
    status, headers, _ = post(f"{endpoints['main']}/translate?direction=a2b", image_bytes((50, 37)))
    elapsed_ms = (time.perf_counter() - start) * 1e3
    assert status == 200
    parts = dict(item.split(";dur=") for item in headers["server-timing"].split(", "))
    assert list(parts) == ["ingress", "hop", "decode", "queue", "forward", "encode"]
    ms = {name: float(value) for name, value in parts.items()}
    assert all(v >= 0 for v in ms.values()) and ms["forward"] > 0
    # the model's parts and the hop happen within the ingress's time, which is within the client's
    assert ms["hop"] + ms["decode"] + ms["queue"] + ms["forward"] + ms["encode"] <= ms["ingress"] + 0.05 <= elapsed_ms


def test_a_lone_request_does_not_wait_for_a_batch(endpoints):
    # the main app's batches wait up to 50 ms (serve.batch_wait_timeout_s) while other requests are in flight
    queued = []
    for _ in range(3):
        _, headers, _ = post(f"{endpoints['main']}/translate?direction=a2b", image_bytes((40, 30)))
        queued.append(float(headers["server-timing"].split("queue;dur=")[1].split(",")[0]))
    assert min(queued) < 20.0, queued  # ms


def test_topology_single_translates_in_the_ingress_replica_itself(endpoints):
    status, _, body = post(f"{endpoints['single']}/translate?direction=b2a", image_bytes((50, 37)))
    assert status == 200 and Image.open(io.BytesIO(body)).size == (50, 37)

    def median_hop(app: str) -> float:
        hops = []
        for _ in range(5):
            _, headers, _ = post(f"{endpoints[app]}/translate?direction=a2b", image_bytes((40, 30)))
            hops.append(float(headers["server-timing"].split("hop;dur=")[1].split(",")[0]))
        return sorted(hops)[2]

    # the same settings in topology split ("tight") pay the call to the model replica; single does not
    assert median_hop("single") < median_hop("tight")


def test_full_resolution_translates_at_the_images_own_size_in_tiles(endpoints):
    url, data = endpoints["main"], image_bytes((150, 97))
    status, headers, full = post(f"{url}/translate?direction=a2b&resolution=full", data)
    assert status == 200 and headers["x-resolution"] == "full", full[:300]
    assert Image.open(io.BytesIO(full)).size == (150, 97)  # tiled: 150 > serve.full_resolution_tile=64
    _, _, model = post(f"{url}/translate?direction=a2b", data)
    assert full != model  # not the resize to the 32-px training size and back
    status, _, body = post(f"{url}/translate?direction=a2b&resolution=native", data)
    assert status == 400 and json.loads(body)["error"] == "bad_resolution"


def test_python_client_and_translate_cli_use_the_endpoint(endpoints, tmp_path):
    from crossnet_dist.cli import main
    from crossnet_dist.serving.client import RemoteTranslateError, translate_remote

    png = translate_remote(endpoints["main"], image_bytes((33, 20)), "a2b")
    assert Image.open(io.BytesIO(png)).size == (33, 20)
    with pytest.raises(RemoteTranslateError) as err:
        translate_remote(endpoints["main"], b"not an image", "a2b", content_type="image/png")
    assert err.value.status == 400 and err.value.error == "not_an_image"

    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "one.png").write_bytes(image_bytes((24, 18)))
    (inputs / "two.jpg").write_bytes(image_bytes((30, 30), "JPEG"))
    (inputs / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    code = main(["translate", "--endpoint", endpoints["main"], "--direction", "b2a", str(inputs), "--out", str(tmp_path / "out")])
    assert code == 0
    assert Image.open(tmp_path / "out" / "one_b2a.png").size == (24, 18)
    assert Image.open(tmp_path / "out" / "two_b2a.png").size == (30, 30)
    assert not (tmp_path / "out" / "bad_b2a.png").exists()


def malformed_requests() -> list[tuple[str, str, bytes, str | None, tuple[int, ...]]]:
    """(name, query, body, content type, accepted statuses)."""
    good = image_bytes((20, 20))
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    form_without_image, form_type = multipart("comment", None, b"hello", "text/plain")
    form_image_as_text, form_image_as_text_type = multipart("image", None, b"hello", "text/plain")
    form_text_part, form_text_type = multipart("image", "x.txt", b"hello", "text/plain")
    return [
        ("truncated png", "direction=a2b", good[: len(good) // 2], "image/png", (400,)),
        ("png signature only", "direction=b2a", PNG_SIGNATURE, "image/png", (400,)),
        ("text as png", "direction=a2b", b"hello, I am not an image", "image/png", (400,)),
        ("zero bytes", "direction=a2b", b"", "image/png", (400,)),
        ("huge header", "direction=a2b", png_with_header(5000, 5000), "image/png", (413,)),
        ("bomb header", "direction=b2a", png_with_header(100_000, 100_000), "image/png", (413,)),
        ("too many bytes", "direction=a2b", b"\0" * 1_000_500, "image/png", (413,)),
        ("text content type", "direction=a2b", good, "text/plain", (415,)),
        ("json content type", "direction=a2b", b'{"image": 1}', "application/json", (415,)),
        ("no content type", "direction=a2b", good, None, (415,)),
        ("gif", "direction=a2b", gif.getvalue(), "image/png", (415,)),
        ("bad direction", "direction=c2d", good, "image/png", (400,)),
        ("no direction", "", good, "image/png", (400,)),
        ("form without image", "direction=a2b", form_without_image, form_type, (400,)),
        ("form with image as a text field", "direction=b2a", form_image_as_text, form_image_as_text_type, (400,)),
        ("form with text part", "direction=a2b", form_text_part, form_text_type, (415,)),
        ("broken form", "direction=a2b", b"--x\r\ngarbage", "multipart/form-data; boundary=x", (400,)),
    ]


def test_200_malformed_requests_get_4xx_json_and_the_endpoint_stays_healthy(endpoints):
    url = endpoints["main"]
    kinds = malformed_requests()
    cases = [kinds[i % len(kinds)] for i in range(200)]

    def send(case):
        name, query, body, content_type, expected = case
        status, headers, payload = post(f"{url}/translate?{query}", body, content_type)
        return name, expected, status, headers.get("content-type", ""), payload

    deadline = time.monotonic() + 90
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, cases))
    assert time.monotonic() < deadline
    for name, expected, status, content_type, payload in results:
        assert status in expected, f"{name}: {status} {payload[:200]!r}"
        assert content_type.startswith("application/json"), name
        reason = json.loads(payload)
        assert reason["error"] and reason["detail"], name
    assert get(f"{url}/healthz") == (200, b'{"status":"ok"}')
    status, _, png = post(f"{url}/translate?direction=a2b", image_bytes((20, 20)))
    assert status == 200 and png.startswith(PNG_SIGNATURE)
    counts = scrape(url)
    assert 'crossnet_serve_requests_total{endpoint="translate",status="413"}' in counts


def test_truncated_images_in_a_batch_get_their_own_400_and_the_valid_ones_200(endpoints):
    url = endpoints["main"]
    valid = {"PNG": image_bytes((48, 40), "PNG"), "JPEG": image_bytes((48, 40), "JPEG")}
    truncated = [data[: len(data) * 2 // 3] for data in valid.values()]  # valid header, cut-off pixels
    cases = [("valid", valid["PNG"], "image/png"), ("valid", valid["JPEG"], "image/jpeg"),
             ("truncated", truncated[0], "image/png"), ("truncated", truncated[1], "image/jpeg")] * 16
    with ThreadPoolExecutor(max_workers=8) as pool:  # 4 valid and 4 truncated in flight: batched together
        results = list(pool.map(lambda c: (c[0], *post(f"{url}/translate?direction=a2b", c[1], c[2])), cases))
    for kind, status, _headers, body in results:
        if kind == "valid":
            assert status == 200 and body.startswith(PNG_SIGNATURE), (status, body[:300])
        else:
            assert status == 400 and json.loads(body)["error"] == "not_an_image", (status, body[:300])


@pytest.mark.parametrize("method, path, status, error", [
    ("GET", "/no-such-route", 404, "not_found"),
    ("GET", "/translate", 405, "method_not_allowed"),
    ("POST", "/healthz", 405, "method_not_allowed"),
])
def test_http_layer_errors_have_the_same_json_shape(endpoints, method, path, status, error):
    request = urllib.request.Request(endpoints["main"] + path, data=b"" if method == "POST" else None, method=method)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    body = json.loads(caught.value.read())
    assert caught.value.code == status and caught.value.headers["content-type"] == "application/json"
    assert body["error"] == error and body["detail"] and body["request_id"] == caught.value.headers["x-request-id"]


def test_token_is_enforced_when_set(endpoints):
    url, data = endpoints["secure"], image_bytes((20, 20))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, response_headers, body = post(f"{url}/translate?direction=a2b", data, headers=headers)
        assert status == 401 and json.loads(body)["error"] == "unauthorized"
        assert response_headers.get("www-authenticate") == "Bearer"
    assert get(f"{url}/info")[0] == 401
    assert get(f"{url}/healthz")[0] == 200
    status, _, body = post(f"{url}/translate?direction=a2b", data, headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and body.startswith(PNG_SIGNATURE)
    status, body = get(f"{url}/info", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and json.loads(body)["auth"] is True


def test_concurrent_requests_are_batched(endpoints):
    url = endpoints["main"]
    before = batch_size_histogram(scrape(url))
    data = image_bytes((32, 32))
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda d: post(f"{url}/translate?direction={d}", data)[0], ["a2b", "b2a"] * 16))
    assert statuses == [200] * 32
    after = batch_size_histogram(scrape(url))
    batches = after["crossnet_serve_batch_size_count"] - before.get("crossnet_serve_batch_size_count", 0)
    singles = after["crossnet_serve_batch_size_bucket1.0"] - before.get("crossnet_serve_batch_size_bucket1.0", 0)
    requests = after["crossnet_serve_batch_size_sum"] - before.get("crossnet_serve_batch_size_sum", 0)
    assert requests == 32
    assert batches - singles >= 1, f"no batch of more than one request among {batches} batches"
    assert batches < 32


@pytest.mark.parametrize("app", ["tight", "single"])
def test_overload_gets_503_json(endpoints, app):
    url = endpoints[app]
    data = image_bytes((400, 300))  # slower decode/resize/encode keeps the one replica busy
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: post(f"{url}/translate?direction=a2b", data), range(16)))
    statuses = sorted(status for status, _, _ in results)
    assert 200 in statuses and 503 in statuses, statuses
    for status, headers, body in results:
        if status == 503:
            assert json.loads(body)["error"] == "overloaded" and headers.get("retry-after") == "1"
    assert post(f"{url}/translate?direction=a2b", image_bytes((20, 20)))[0] == 200


def test_info_describes_the_s3_best_pointer(endpoints):
    status, body = get(endpoints["main"] + "/info")
    info = json.loads(body)
    assert status == 200
    assert info["checkpoint"] == "s3://crossnet-test/serve-campaign/best/generator.pt"
    assert info["best_pointer"]["metric"] == {"name": "fid", "value": 42.5, "trial": "t7"}
    assert info["method"] == "crossnet" and info["image_size"] == 32 and info["directions"] == ["a2b", "b2a"]
    assert info["auth"] is False


def test_metrics_scrape_passes_promtool(endpoints, tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make setup` installs the Debian package prometheus"
    post(f"{endpoints['main']}/translate?direction=a2b", image_bytes((20, 20)))
    text = scrape(endpoints["main"])
    for name in ("crossnet_serve_requests_total", "crossnet_serve_request_latency_seconds_bucket",
                 "crossnet_serve_batch_size_bucket", "crossnet_serve_in_flight_requests",
                 "crossnet_serve_model_load_seconds", "crossnet_serve_model_forward_seconds_bucket"):
        assert f"\n{name}" in text, name
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_everything_listens_on_loopback_only(endpoints):
    import psutil

    ours = {p.pid for p in psutil.Process().children(recursive=True)}
    rows = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10).stdout.splitlines()
    mine = [row for row in rows if any(f"pid={pid}," in row for pid in ours)]
    assert mine, "found none of this test's listeners"
    bad = [row for row in mine if not row.split()[3].rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:").startswith("127.")]
    assert not bad, "listening beyond 127.0.0.1:\n" + "\n".join(bad)


def test_prometheus_run_from_the_shipped_config_finds_the_serving_series(endpoints):
    from tests.prometheus_server import prometheus

    post(f"{endpoints['main']}/translate?direction=a2b", image_bytes((20, 20)))
    with prometheus(serve_target=endpoints["main"].removeprefix("http://")) as query:
        found = query('crossnet_serve_requests_total{app="crossnet-serve"}')
        assert found, query.targets()
        assert sum(float(series["value"][1]) for series in found) >= 1
