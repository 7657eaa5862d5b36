"""Checks on an HTTP translation request, before any model work: content type, size, image header.

Every rejection is a `RequestRejected` carrying its HTTP status and a JSON body
`{"error": CODE, "detail": MESSAGE, "request_id": ID}` (the id is also the X-Request-ID header):

| status | error                      | when                                                               |
|--------|----------------------------|--------------------------------------------------------------------|
| 400    | bad_direction              | `direction` missing or not a2b / b2a                               |
| 400    | empty_body                 | zero bytes, or a multipart form without an image part              |
| 400    | not_an_image               | the bytes are not a readable PNG/JPEG (text, truncated, corrupt)   |
| 408    | request_timeout            | the body did not arrive within `serve.body_timeout_s`, or the head |
|        |                            | (request line + headers) within `serve.header_timeout_s` (proxy)   |
| 401    | unauthorized               | a token is configured and the request lacks it or has another one  |
| 413    | body_too_large             | more than `serve.max_body_bytes` bytes                             |
| 413    | too_many_pixels            | width x height in the header exceeds `serve.max_pixels`, or        |
|        |                            | `serve.max_full_pixels` with `resolution=full`                     |
| 429    | rate_limited               | the client spent its replica time (`serve.client_replica_s_per_s`); |
|        |                            | Retry-After says when it has some again                            |
| 431    | headers_too_large          | request headers beyond `serve.max_header_bytes`                     |
| 415    | unsupported_media_type     | Content-Type is neither image/png, image/jpeg nor multipart/form-data |
| 415    | unsupported_image_format   | a decodable image that is not PNG or JPEG (GIF, BMP, ...)          |
| 404    | not_found                  | no such route                                                      |
| 405    | method_not_allowed         | e.g. GET /translate                                                |
| 499    | client_closed_request      | the client hung up before its answer (counted in the metrics; nobody reads it) |
| 500    | internal                   | a server fault: no detail beyond the request id, which the log has |
| 503    | overloaded                 | the model replicas' queues are full (backpressure); Retry-After: 1 |

The pixel count comes from the image header (PIL opens images lazily), so a small file that
declares a huge canvas (a decompression bomb) is refused before any pixel is decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image

DIRECTIONS = ("a2b", "b2a")  # = crossnet_dist.methods.base.DIRECTIONS; not imported, so the ingress never loads torch

RAW_IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG", "image/pjpeg": "JPEG"}
MULTIPART_TYPE = "multipart/form-data"
IMAGE_FORMATS = ("PNG", "JPEG")
FORM_FIELD = "image"


class RequestRejected(Exception):
    """A request the endpoint refuses; `status` is the HTTP status, `error` a stable code."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "detail": self.detail}


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int


RESOLUTIONS = ("model", "full")


def check_resolution(resolution: str | None) -> str:
    if resolution is None:
        return "model"
    if resolution not in RESOLUTIONS:
        raise RequestRejected(
            400, "bad_resolution",
            f"query parameter 'resolution' must be one of {', '.join(RESOLUTIONS)} (got {resolution!r})")
    return resolution


def check_direction(direction: str | None) -> str:
    if direction not in DIRECTIONS:
        raise RequestRejected(
            400, "bad_direction", f"query parameter 'direction' must be one of {', '.join(DIRECTIONS)} (got {direction!r})"
        )
    return direction


def media_type(content_type: str | None) -> str:
    """'image/PNG; charset=x' -> 'image/png'; '' when absent."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_raw_content_type(content_type: str | None) -> str:
    """The media type of a request body: a PNG/JPEG image type or multipart/form-data."""
    kind = media_type(content_type)
    if kind in RAW_IMAGE_TYPES or kind == MULTIPART_TYPE:
        return kind
    shown = kind or "none"
    raise RequestRejected(
        415, "unsupported_media_type",
        f"Content-Type {shown!r} is not supported: send the image as image/png or image/jpeg, "
        f"or as the '{FORM_FIELD}' field of a multipart/form-data form",
    )


def check_part_content_type(content_type: str | None) -> None:
    """A form part may be typed as an image, as application/octet-stream, or not at all."""
    kind = media_type(content_type)
    if kind and kind not in RAW_IMAGE_TYPES and kind != "application/octet-stream":
        raise RequestRejected(
            415, "unsupported_media_type", f"form field '{FORM_FIELD}' has Content-Type {kind!r}: send a PNG or JPEG"
        )


def check_declared_length(content_length: str | None, max_bytes: int) -> None:
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise RequestRejected(400, "bad_content_length", f"Content-Length {content_length!r} is not a number") from None
    if declared > max_bytes:
        raise body_too_large(max_bytes)


def body_too_large(max_bytes: int) -> RequestRejected:
    return RequestRejected(413, "body_too_large", f"the request body exceeds {max_bytes} bytes (serve.max_body_bytes)")


def probe_image(data: bytes, max_pixels: int) -> ImageHeader:
    """Reads only the header: format and size. Refuses non-images, other formats and huge canvases."""
    if not data:
        raise RequestRejected(400, "empty_body", "the request has no image bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is stricter
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as err:
            raise RequestRejected(413, "too_many_pixels", f"image declares too many pixels ({err})") from None
        except Exception as err:  # noqa: BLE001 - PIL raises many types for junk
            raise RequestRejected(
                400, "not_an_image", f"the body is not a readable PNG or JPEG image ({type(err).__name__})"
            ) from None
    header = ImageHeader(image.format or "unknown", *image.size)
    image.close()
    if header.format not in IMAGE_FORMATS:
        raise RequestRejected(
            415, "unsupported_image_format", f"image format {header.format} is not supported: send a PNG or JPEG"
        )
    if header.width < 1 or header.height < 1:
        raise RequestRejected(400, "not_an_image", f"image has no pixels ({header.width}x{header.height})")
    if header.width * header.height > max_pixels:
        raise RequestRejected(
            413, "too_many_pixels",
            f"image is {header.width}x{header.height} = {header.width * header.height} pixels, more than "
            f"{max_pixels} (serve.max_pixels)",
        )
    return header


def check_full_resolution_pixels(header: ImageHeader, resolution: str, max_full_pixels: int) -> None:
    """`resolution=full` costs forwards over every pixel (tiles): its own, lower limit."""
    pixels = header.width * header.height
    if resolution == "full" and pixels > max_full_pixels:
        raise RequestRejected(
            413, "too_many_pixels",
            f"image is {header.width}x{header.height} = {pixels} pixels, more than {max_full_pixels} for "
            "resolution=full (serve.max_full_pixels); resolution=model takes it",
        )


def decode_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Header check, then the full decode (mode unchanged); a truncated or corrupt body is `not_an_image`."""
    probe_image(data, max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except Exception as err:  # noqa: BLE001
            raise RequestRejected(
                400, "not_an_image", f"the image could not be decoded ({type(err).__name__}: {err})"
            ) from None
    return image
