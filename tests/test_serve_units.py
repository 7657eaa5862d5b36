"""Serving pieces that need no Ray: request checks, checkpoint sources, config, client errors, CLI parsing."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from PIL import Image

from tests.helpers import sample_photo

pytestmark = pytest.mark.timeout(60)


def png(size=(20, 10)) -> bytes:
    buffer = io.BytesIO()
    sample_photo("china.jpg").resize(size).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8))


def test_directions_match_the_methods():
    from crossnet_dist.methods.base import DIRECTIONS
    from crossnet_dist.serving import requests

    assert requests.DIRECTIONS == DIRECTIONS


@pytest.mark.parametrize("data, status, error", [
    (b"", 400, "empty_body"),
    (b"plain text", 400, "not_an_image"),
    (png_declaring(5000, 5000), 413, "too_many_pixels"),
    (png_declaring(200_000, 200_000), 413, "too_many_pixels"),
], ids=["zero-bytes", "text", "5000x5000-header", "bomb-header"])
def test_probe_refuses_before_decoding(data, status, error):
    from crossnet_dist.serving.requests import RequestRejected, probe_image

    with pytest.raises(RequestRejected) as err:
        probe_image(data, max_pixels=4096 * 4096)
    assert (err.value.status, err.value.error) == (status, error)
    assert set(err.value.body()) == {"error", "detail"}


def test_probe_and_decode_of_real_and_broken_images():
    from crossnet_dist.serving.requests import RequestRejected, decode_checked, probe_image

    data = png((30, 12))
    header = probe_image(data, 1000)
    assert (header.format, header.width, header.height) == ("PNG", 30, 12)
    assert decode_checked(data, 1000).size == (30, 12)
    with pytest.raises(RequestRejected, match="max_pixels"):
        probe_image(data, 359)
    with pytest.raises(RequestRejected) as err:
        decode_checked(data[: len(data) // 2], 1000)
    assert err.value.error == "not_an_image"
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    with pytest.raises(RequestRejected) as err:
        probe_image(gif.getvalue(), 1000)
    assert err.value.status == 415


def test_content_type_and_length_checks():
    from crossnet_dist.serving.requests import (
        RequestRejected,
        check_declared_length,
        check_direction,
        check_part_content_type,
        check_raw_content_type,
    )

    assert check_raw_content_type("image/PNG; q=1") == "image/png"
    assert check_raw_content_type("multipart/form-data; boundary=x") == "multipart/form-data"
    check_part_content_type(None)
    check_part_content_type("application/octet-stream")
    for bad in (None, "text/plain", "image/gif", "application/json"):
        with pytest.raises(RequestRejected) as err:
            check_raw_content_type(bad)
        assert err.value.status == 415
    with pytest.raises(RequestRejected) as err:
        check_declared_length("2001", 2000)
    assert err.value.status == 413
    with pytest.raises(RequestRejected) as err:
        check_declared_length("lots", 2000)
    assert err.value.status == 400
    with pytest.raises(RequestRejected, match="a2b, b2a"):
        check_direction("x2y")


def test_checkpoint_sources(tmp_path):
    from crossnet_dist.checkpoints.files import CheckpointError
    from crossnet_dist.checkpoints.source import resolve_checkpoint

    best = tmp_path / "campaign" / "best"
    best.mkdir(parents=True)
    with pytest.raises(CheckpointError, match="has no generator.pt"):
        resolve_checkpoint(str(best))
    (best / "generator.pt").write_bytes(b"x")
    (best / "metric.json").write_text(json.dumps({"fid": 12.5}))
    (best / "notes.json").write_text("not json")
    resolved = resolve_checkpoint(str(best))
    assert resolved.local_path == best / "generator.pt"
    assert resolved.pointer == {"metric": {"fid": 12.5}}
    assert resolve_checkpoint(str(best / "generator.pt")).pointer == {}
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        resolve_checkpoint(str(tmp_path / "missing.pt"))


def test_serve_config_errors_name_the_key():
    from crossnet_dist.config import ConfigError, load_config

    cfg = load_config(None, ["serve.replicas=3"])
    assert cfg.serve.host == "127.0.0.1" and cfg.serve.replicas == 3
    for override, key in [
        ("serve.max_batch_size=0", "serve.max_batch_size"),
        ("serve.max_batch_size=64", "serve.max_ongoing_requests"),
        ("serve.port=70000", "serve.port"),
        ("serve.device=tpu", "serve.device"),
        ("serve.min_replicas=9", "serve.min_replicas"),
        ("serve.max_queued_requests=0", "serve.max_queued_requests"),
        ("serve.token=' '", "serve.token"),
        ("serve.replica=2", "serve.replica"),
        ("serve.header_timeout_s=0", "serve.header_timeout_s"),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(None, [override])


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_a_bad_header_deadline_in_the_proxy_environment_fails_naming_the_variable(monkeypatch, value):
    from crossnet_dist.serving.header_deadline import TIMEOUT_ENV, install

    monkeypatch.setenv(TIMEOUT_ENV, value)
    with pytest.raises(ValueError, match=TIMEOUT_ENV):
        install()


def test_application_options_follow_the_config():
    from crossnet_dist.config import load_config
    from crossnet_dist.serving.deploy import build_application

    def model_deployment(app):  # ingress.bind(model.bind(...), settings): Ray's Application internals
        return app._bound_deployment.init_args[0]._bound_deployment

    fixed = model_deployment(build_application("x.pt", load_config(None, [
        "serve.replicas=3", "serve.gpus_per_replica=1", "serve.max_queued_requests=7"]).serve))
    assert fixed.name == "TranslatorModel" and fixed.num_replicas == 3
    assert fixed.ray_actor_options["num_gpus"] == 1 and fixed.max_ongoing_requests == 16
    assert fixed._deployment_config.max_queued_requests == 7
    auto = model_deployment(build_application("x.pt", load_config(None, [
        "serve.autoscale=true", "serve.max_replicas=5", "serve.target_ongoing_requests=3"]).serve))
    assert auto._deployment_config.autoscaling_config.max_replicas == 5
    assert auto._deployment_config.autoscaling_config.target_ongoing_requests == 3


def test_client_reports_unreachable_endpoints():
    from crossnet_dist.ports import free_port
    from crossnet_dist.serving.client import RemoteTranslateError, guess_content_type, translate_remote

    assert guess_content_type(png()) == "image/png"
    assert guess_content_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    with pytest.raises(RemoteTranslateError) as err:
        translate_remote(f"http://127.0.0.1:{free_port()}", png(), "a2b", timeout_s=5)
    assert err.value.status is None and err.value.error == "unreachable"
    with pytest.raises(ValueError, match="unknown direction"):
        translate_remote("http://127.0.0.1:1", png(), "sideways")


def test_translate_cli_needs_exactly_one_source(capsys):
    from crossnet_dist.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["translate", "x.png", "--endpoint", "http://127.0.0.1:8000", "--direction", "a2b", "--out", "o"])
    assert args.endpoint and args.checkpoint is None
    for argv in (["translate", "x.png", "--direction", "a2b", "--out", "o"],
                 ["translate", "x.png", "--checkpoint", "g.pt", "--endpoint", "http://h", "--direction", "a2b", "--out", "o"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    serve = parser.parse_args(["serve", "--checkpoint", "s3://b/best/", "--autoscale", "--port", "0", "serve.max_batch_size=4"])
    from crossnet_dist.serving.cli import serve_overrides

    assert serve_overrides(serve) == ["serve.max_batch_size=4", "serve.autoscale=true", "serve.port=0"]
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--checkpoint", "g.pt", "--autoscale", "--replicas", "2"])


def test_s3_checkpoint_folder_file_and_missing(s3_server, s3_prefix, tmp_path):
    from crossnet_dist.checkpoints.files import CheckpointError
    from crossnet_dist.checkpoints.source import resolve_checkpoint
    from crossnet_dist.storage import join, opened

    storage = s3_server.storage_options()
    with pytest.raises(CheckpointError, match=f"checkpoint not found: {s3_prefix}/nothing.pt"):
        resolve_checkpoint(f"{s3_prefix}/nothing.pt", storage)
    with opened(s3_prefix, storage) as (fs, root):
        fs.pipe_file(join(root, "best", "metric.json"), b'{"fid": 3}')
    with pytest.raises(CheckpointError, match="has no generator.pt"):
        resolve_checkpoint(f"{s3_prefix}/best/", storage)
    with opened(s3_prefix, storage) as (fs, root):
        fs.pipe_file(join(root, "best", "generator.pt"), b"weights")
    resolved = resolve_checkpoint(f"{s3_prefix}/best/", storage, cache_dir=tmp_path)
    assert resolved.url == f"{s3_prefix}/best/generator.pt" and resolved.pointer == {"metric": {"fid": 3}}
    assert resolved.local_path.read_bytes() == b"weights" and resolved.local_path.parent == tmp_path
    resolved.discard_copy()
    assert list(tmp_path.iterdir()) == []
