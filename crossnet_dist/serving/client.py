"""Client of the endpoint: `translate_remote` for bytes, `translate_files_remote` for files.

    png = translate_remote("http://127.0.0.1:8000", Path("cat.jpg").read_bytes(), "a2b")

The token defaults to the CROSSNET_SERVE_TOKEN environment variable. Errors raise
`RemoteTranslateError` with the HTTP status and the endpoint's JSON reason.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterable

from crossnet_dist.methods.base import check_direction
from crossnet_dist.translate import TranslateReport, collect_inputs

log = logging.getLogger(__name__)
TOKEN_ENV = "CROSSNET_SERVE_TOKEN"  # nosec B105 - the name of the variable, not a token
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RemoteTranslateError(RuntimeError):
    def __init__(self, status: int | None, error: str, detail: str):
        super().__init__(f"{status or 'no answer'} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


def guess_content_type(data: bytes) -> str:
    if data.startswith(_PNG_SIGNATURE):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "application/octet-stream"


def check_http_url(url: str) -> None:
    """urllib also opens file:// and ftp:// URLs: an endpoint must be http(s)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise RemoteTranslateError(f"endpoint {url!r} is not an http:// or https:// URL")


def translate_remote(
    url: str,
    image_bytes: bytes,
    direction: str,
    token: str | None = None,
    timeout_s: float = 60.0,
    content_type: str | None = None,
    resolution: str = "model",
) -> bytes:
    """POSTs the image to `url`/translate and returns the translated PNG (same size as the input);
    resolution "full" translates at the image's own size."""
    check_direction(direction)
    check_http_url(url)
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    headers = {"Content-Type": content_type or guess_content_type(image_bytes)}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    query = urllib.parse.urlencode({"direction": direction, "resolution": resolution})
    request = urllib.request.Request(f"{url.rstrip('/')}/translate?{query}", data=image_bytes, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # nosec B310 - http(s) only, checked above
            return response.read()
    except urllib.error.HTTPError as err:
        raise _describe(err) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise RemoteTranslateError(None, "unreachable", f"{url}: {reason}") from None


def _describe(err: urllib.error.HTTPError) -> RemoteTranslateError:
    body = err.read()
    try:
        payload = json.loads(body)
        return RemoteTranslateError(err.code, payload.get("error", "error"), payload.get("detail", str(payload)))
    except (ValueError, AttributeError):
        return RemoteTranslateError(err.code, "error", body[:200].decode("utf-8", "replace") or err.reason)


def translate_files_remote(
    url: str,
    direction: str,
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    token: str | None = None,
    resolution: str = "model",
) -> TranslateReport:
    """Translates files (or every image in the given folders) through the endpoint, one request each;
    writes OUT/<name>_<direction>.png. A file the endpoint refuses (4xx) is skipped and reported;
    an unreachable or failing endpoint (no answer, 5xx) raises."""
    check_direction(direction)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = TranslateReport()
    for path in collect_inputs(inputs):
        try:
            png = translate_remote(url, path.read_bytes(), direction, token, resolution=resolution)
        except RemoteTranslateError as err:
            if err.status is None or err.status >= 500 or err.status == 401:
                raise
            report.skipped[str(path)] = str(err)
            log.warning("skipped %s: %s", path, err)
            continue
        target = out_dir / f"{path.stem}_{direction}.png"
        target.write_bytes(png)
        report.written.append(target)
    return report
