"""The live endpoint under generated traffic: schemathesis drives every route of the app's own OpenAPI
schema (valid and invalid requests), and hypothesis generates hostile image bytes (truncated, corrupt,
decompression bombs, odd modes, other formats). No answer may be a 5xx, every error is the JSON shape,
and the endpoint serves a valid image afterwards. Bounded by FUZZ_EXAMPLES (env CROSSNET_FUZZ_EXAMPLES)."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import time
import zlib
from collections import Counter

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported (NOTES-stack.md)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local tests only

import pytest  # noqa: E402
import requests  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from PIL import Image  # noqa: E402

from tests.helpers import tiny_batches, tiny_config  # noqa: E402

pytestmark = pytest.mark.timeout(600)
FUZZ_EXAMPLES = int(os.environ.get("CROSSNET_FUZZ_EXAMPLES", "60"))  # per operation and mode
MAX_PIXELS = 512 * 512
BODY_TIMEOUT_S = 2.0
HEADER_TIMEOUT_S = 2.0
TALLY: Counter = Counter()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    import ray
    from ray import serve

    from crossnet_dist.config import load_config
    from crossnet_dist.ports import free_port
    from crossnet_dist.serving.deploy import build_application
    from crossnet_dist.serving.server import connect_ray, wait_ready
    from crossnet_dist.training.loop import Trainer

    tmp = tmp_path_factory.mktemp("fuzz-model")
    Trainer(tiny_config(tmp, "train.max_steps=1")).fit(tiny_batches(1))
    cfg = load_config(None, ["serve.cpus_per_replica=0.5", "serve.max_body_bytes=200000",
                             f"serve.max_pixels={MAX_PIXELS}", "serve.batch_wait_timeout_s=0.02",
                             f"serve.body_timeout_s={BODY_TIMEOUT_S}"]).serve
    port = free_port()
    assert connect_ray(num_cpus=4, header_timeout_s=HEADER_TIMEOUT_S), "expected to start a local Ray (is RAY_ADDRESS set?)"
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_application(str(tmp / "run" / "generator.pt"), cfg), name="fuzz", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, None, 60)
        yield url
    finally:
        ray.shutdown()


def check_answer(response, what: str) -> None:
    """`response`: a requests or a schemathesis Response (whose header values are lists)."""
    TALLY[response.status_code] += 1
    assert response.status_code < 500, f"{what}: {response.status_code} {response.content[:300]!r}"
    if response.status_code >= 400:
        content_type = {k.lower(): v for k, v in response.headers.items()}["content-type"]
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/json"), (what, content_type)
        body = json.loads(response.content)
        assert set(body) == {"error", "detail", "request_id"} and "Traceback" not in body["detail"], (what, body)


def assert_healthy(url: str) -> None:
    assert requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    png = io.BytesIO()
    Image.new("RGB", (24, 20), (90, 30, 200)).save(png, format="PNG")
    answer = requests.post(f"{url}/translate?direction=a2b", data=png.getvalue(), timeout=30,
                           headers={"Content-Type": "image/png"})
    assert answer.status_code == 200 and Image.open(io.BytesIO(answer.content)).size == (24, 20)


# ---- schemathesis: every operation of the app's schema ----------------------------------------
def test_schemathesis_finds_no_server_error_on_any_route(endpoint):
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{endpoint}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"POST /translate", "GET /info", "GET /healthz"}
    session = requests.Session()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case):
                check_answer(case.call(base_url=endpoint, session=session, timeout=30), f"{operation.label} {mode}")  # noqa: B023

            try:
                call()
            except Unsatisfiable:  # NEGATIVE mode on a route with no parameter or body to make invalid
                assert mode == GenerationMode.NEGATIVE, operation.label
    assert_healthy(endpoint)
    print(f"schemathesis statuses: {dict(sorted(TALLY.items()))}")


# ---- hypothesis: hostile image bytes ------------------------------------------------------------
MODES = ["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "CMYK"]


@st.composite
def image_files(draw):
    """(bytes, content type, what it is): valid images in many modes and the ways they go wrong."""
    mode = draw(st.sampled_from(MODES))
    fmt = "JPEG" if mode == "CMYK" else draw(st.sampled_from(["PNG", "JPEG", "GIF", "BMP"]))
    if fmt == "JPEG" and mode not in ("RGB", "L", "CMYK"):
        mode = "RGB"
    if fmt in ("GIF", "BMP") and mode in ("I;16", "LA"):
        mode = "L"
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format=fmt)
    data, kind = buffer.getvalue(), "valid"
    damage = draw(st.sampled_from(["none", "truncate", "flip", "bomb", "empty", "garbage"]))
    if damage == "truncate":
        data, kind = data[: draw(st.integers(0, max(len(data) - 1, 0)))], "truncated"
    elif damage == "flip":
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            b[draw(st.integers(0, len(b) - 1))] ^= draw(st.integers(1, 255))
        data, kind = bytes(b), "corrupt"
    elif damage == "bomb":
        data, kind = png_with_header(draw(st.integers(1000, 60000)), draw(st.integers(1000, 60000))), "bomb"
    elif damage == "empty":
        data, kind = b"", "empty"
    elif damage == "garbage":
        data, kind = draw(st.binary(min_size=1, max_size=2000)), "garbage"
    content_type = draw(st.sampled_from(["image/png", "image/jpeg", "application/octet-stream", "text/plain"]))
    return data, content_type, f"{kind} {fmt} {mode} {size} as {content_type}"


def png_with_header(width: int, height: int) -> bytes:
    """A few hundred bytes whose IHDR declares width x height."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_hostile_image_bytes_get_4xx_json_or_a_correct_translation(endpoint):
    session = requests.Session()
    before = Counter(TALLY)

    @settings(max_examples=4 * FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=image_files(), direction=st.sampled_from(["a2b", "b2a"]))
    def post(case, direction):
        data, content_type, what = case
        response = session.post(f"{endpoint}/translate?direction={direction}", data=data, timeout=30,
                                headers={"Content-Type": content_type})
        check_answer(response, what)
        if response.status_code == 200:
            sent = Image.open(io.BytesIO(data))
            assert Image.open(io.BytesIO(response.content)).size == sent.size, what
        elif what.startswith("valid") and content_type in ("image/png", "image/jpeg") and "GIF" not in what \
                and "BMP" not in what:
            pytest.fail(f"{what}: a valid image was refused: {response.status_code} {response.text[:200]}")
        if what.startswith("bomb") and content_type.startswith("image/"):
            assert response.status_code == 413 and json.loads(response.content)["error"] == "too_many_pixels", what

    post()
    assert_healthy(endpoint)
    print(f"image fuzz statuses: {dict(sorted((TALLY - before).items()))}")


# ---- slow and oversized clients ---------------------------------------------------------------------
def raw_request(url: str, head: bytes, body: bytes, wait_s: float) -> bytes:
    """Sends `head` + `body` on a raw socket and returns what the server answers within `wait_s`."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(head + body)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or len(answer) < answer.find(b"\r\n\r\n") + 4 + content_length(answer):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except socket.timeout:
            pass
    return answer


def content_length(answer: bytes) -> int:
    for line in answer.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_a_client_that_stalls_mid_body_gets_408_json(endpoint):
    head = (b"POST /translate?direction=a2b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: 5000\r\n\r\n")
    start = time.monotonic()
    answer = raw_request(endpoint, head, b"\x89PNG\r\n\x1a\n" + b"\0" * 100, wait_s=BODY_TIMEOUT_S + 20)
    took = time.monotonic() - start
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"408", answer[:500]
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["error"] == "request_timeout" and "108 bytes received" in body["detail"]
    assert BODY_TIMEOUT_S <= took < BODY_TIMEOUT_S + 15
    assert_healthy(endpoint)


def test_a_client_that_stalls_mid_head_gets_408_json_and_is_disconnected(endpoint):
    start = time.monotonic()
    answer = raw_request(endpoint, b"POST /translate?direction=a2b HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slo", b"",
                         wait_s=HEADER_TIMEOUT_S + 20)
    took = time.monotonic() - start
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"408", answer[:500]
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"
    assert HEADER_TIMEOUT_S <= took < HEADER_TIMEOUT_S + 15
    assert_healthy(endpoint)


def test_a_kept_alive_connection_whose_next_head_stalls_gets_408(endpoint):
    host, port = endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HEADER_TIMEOUT_S + 20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first or len(first) < first.find(b"\r\n\r\n") + 4 + content_length(first):
            first += sock.recv(65536)
        assert first.split()[1] == b"200", first[:300]
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.")
        start = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        took = time.monotonic() - start
    assert answer.split()[1] == b"408", answer[:300]
    assert took < HEADER_TIMEOUT_S + 15


def translate_requests_by_status(url: str) -> Counter:
    """Counts of answered /translate requests by status, and "in_flight": those being read or translated."""
    counts: Counter = Counter()
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("crossnet_serve_requests_total{") and 'endpoint="translate"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            counts[status] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("crossnet_serve_in_flight_requests "):
            counts["in_flight"] = float(line.rsplit(" ", 1)[1])
    return counts


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


HANG_UPS = 10  # Serve delivers a hang-up in more than one way (a race): one try would pass by luck


def test_clients_that_hang_up_mid_body_are_counted_as_499_not_as_server_errors(endpoint):
    before = translate_requests_by_status(endpoint)
    host, port = endpoint.removeprefix("http://").split(":")
    for _ in range(HANG_UPS):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /translate?direction=a2b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                         b"Content-Length: 5000\r\n\r\n\x89PNG\r\n\x1a\n" + b"\0" * 100)
            # hang up once the endpoint is reading the body (a hang-up before that never reaches it)
            assert wait_until(lambda: translate_requests_by_status(endpoint)["in_flight"] >= 1, BODY_TIMEOUT_S / 2)
        assert wait_until(lambda: translate_requests_by_status(endpoint)["in_flight"] == 0, BODY_TIMEOUT_S + 20)
    after = translate_requests_by_status(endpoint)
    assert after["499"] == before["499"] + HANG_UPS, after
    assert after["500"] == before["500"] and after["408"] == before["408"], after
    assert_healthy(endpoint)


def test_oversized_headers_are_refused_and_harm_nothing(endpoint):
    head = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200_000 + b"\r\n\r\n")
    answer = raw_request(endpoint, head, b"", wait_s=20)
    assert answer.split()[1] == b"431", answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "headers_too_large"
    assert_healthy(endpoint)
