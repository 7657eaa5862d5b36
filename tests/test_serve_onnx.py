"""The endpoint with `serve.backend=onnxruntime`: a folder holding only an exported a2b.onnx, served
by a real local Ray + Serve, translating like the eager model it was exported from."""

from __future__ import annotations

import io
import json
import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported (NOTES-stack.md)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local tests only

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from tests.helpers import tiny_config  # noqa: E402
from tests.serve_http import get, image_bytes, post  # noqa: E402
from tests.test_export import write_checkpoint  # noqa: E402

pytestmark = pytest.mark.timeout(180)
TILE = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from crossnet_dist.export import export_checkpoint

    tmp = tmp_path_factory.mktemp("onnx-serve")
    checkpoint = write_checkpoint(tmp / "generator.pt", tiny_config(None))
    (tmp / "best").mkdir()
    export_checkpoint(str(checkpoint), "onnx", "a2b", str(tmp / "best" / "a2b.onnx"))
    return checkpoint, tmp / "best"


@pytest.fixture(scope="module")
def endpoint(exported):
    from crossnet_dist.config import load_config
    from crossnet_dist.ports import free_port
    from crossnet_dist.serving.server import start_endpoint, stop_endpoint

    cfg = load_config(None, ["serve.backend=onnxruntime", "serve.cpus_per_replica=1", f"serve.port={free_port()}",
                             f"serve.full_resolution_tile={TILE}"])
    running = start_endpoint(str(exported[1]), cfg.serve, num_cpus=2)
    try:
        yield running.url
    finally:
        stop_endpoint(running)


def eager_translation(checkpoint, data: bytes, resolution: str) -> np.ndarray:
    from crossnet_dist.config import load_config
    from crossnet_dist.serving.backends import TorchBackend
    from crossnet_dist.serving.deploy import serve_settings

    backend = TorchBackend(str(checkpoint), serve_settings(load_config(None, []).serve), "cpu")
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return np.asarray(backend.translate([image], "a2b", resolution)[0], dtype=int)


@pytest.mark.parametrize("resolution,size", [("model", (83, 50)), ("full", (61, 40))])
def test_the_onnx_backend_translates_like_the_eager_model(endpoint, exported, resolution, size):
    data = image_bytes(size)
    status, headers, body = post(f"{endpoint}/translate?direction=a2b&resolution={resolution}", data)
    assert status == 200, body[:300]
    got = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), dtype=int)
    assert got.shape == (size[1], size[0], 3)
    # 8-bit outputs: float differences of ~1e-6 can round a value the other way, never more
    assert np.abs(got - eager_translation(exported[0], data, resolution)).max() <= 1


def test_info_names_the_backend_and_what_its_files_hold(endpoint):
    status, body = get(f"{endpoint}/info")
    info = json.loads(body)
    assert status == 200
    assert (info["backend"], info["directions"], info["resolutions"]) == ("onnxruntime", ["a2b"], ["model", "full"])
    assert info["checkpoint"].endswith("best/a2b.onnx")


def test_a_direction_without_an_exported_file_is_a_400_naming_the_served_ones(endpoint):
    status, _, body = post(f"{endpoint}/translate?direction=b2a", image_bytes((40, 40)))
    assert status == 400
    answer = json.loads(body)
    assert answer["error"] == "bad_direction" and "serves a2b only" in answer["detail"]


def test_full_resolution_beyond_the_untiled_limit_is_a_400_pointing_to_the_torch_backend(endpoint):
    status, _, body = post(f"{endpoint}/translate?direction=a2b&resolution=full", image_bytes((TILE + 1, 30)))
    assert status == 400
    answer = json.loads(body)
    assert answer["error"] == "bad_resolution" and "backend torch" in answer["detail"]


def test_the_locust_scenario_loads_the_endpoint_in_the_directions_it_serves(endpoint, tmp_path):
    from bench.load_test import run_locust

    result = run_locust(endpoint, users=4, seconds=3, out_dir=tmp_path)
    translated = {name: row for name, row in result["rows"].items() if name.startswith("/translate")}
    assert list(translated) == ["/translate a2b"]  # b2a is not served here: /info said so
    assert int(translated["/translate a2b"]["Request Count"]) > 10 and result["failures"] == []
