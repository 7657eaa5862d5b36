"""HTTP helpers of the endpoint tests: requests that return 4xx/5xx instead of raising, test images."""

from __future__ import annotations

import io
import struct
import urllib.error
import urllib.request
import zlib

from tests.helpers import sample_photo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def post(url: str, body: bytes, content_type: str | None = "image/png", headers: dict | None = None, timeout=30):
    """Returns (status, headers, body) without raising on 4xx/5xx."""
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, headers=all_headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def get(url: str, headers: dict | None = None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def image_bytes(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    sample_photo("china.jpg").resize(size).save(buffer, format=fmt)
    return buffer.getvalue()


def png_with_header(width: int, height: int) -> bytes:
    """A small PNG whose IHDR declares width x height (a decompression-bomb shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def multipart(field: str, filename: str | None, data: bytes, part_type: str) -> tuple[bytes, str]:
    """A one-part form; without a filename the part is a plain text field."""
    boundary = "crossnet-test-boundary"
    disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
    body = (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: {part_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def scrape(url: str) -> str:
    status, body = get(url + "/metrics")
    assert status == 200
    return body.decode()


def batch_size_histogram(text: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        if family.name == "crossnet_serve_batch_size":
            return {s.name + s.labels.get("le", ""): s.value for s in family.samples}
    return {}


# ---- tests --------------------------------------------------------------------------------------
