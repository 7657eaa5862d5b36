"""A deadline for each request head on Serve's HTTP proxy (a slowloris on the headers).

Serve's proxy is uvicorn, which times out idle keep-alive connections but not a connection whose
request line and headers never finish: a client sending one header byte at a time holds a socket
and a parser for as long as it likes. The body already has its deadline (`serve.body_timeout_s`, in
the ingress); this gives the head one: a connection whose request head is not complete within
`serve.header_timeout_s` of its first byte (or of the connection, for the first request) gets
`408 {"error": "request_timeout", ...}` and is closed.

It runs inside the proxy process, installed through Serve's proxy start-up hook:

    RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=crossnet_dist.serving.header_deadline:install
    CROSSNET_SERVE_HEADER_TIMEOUT_S=15

`proxy_environment` gives both; a local Ray started by `crossnet serve` gets them, and a cluster sets
them in the environment of its nodes (infra/k8s/rayservice.yaml).
"""

from __future__ import annotations

import json
import logging
import os

log = logging.getLogger(__name__)
HOOK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
TIMEOUT_ENV = "CROSSNET_SERVE_HEADER_TIMEOUT_S"
HOOK = f"{__name__}:install"
_PATCHED = "_crossnet_header_deadline"


def proxy_environment(header_timeout_s: float) -> dict[str, str]:
    """The environment variables that make Serve's proxies enforce the deadline."""
    return {HOOK_ENV: HOOK, TIMEOUT_ENV: f"{float(header_timeout_s):g}"}


def timeout_response(timeout_s: float) -> bytes:
    """The raw HTTP/1.1 408 sent before closing (the endpoint's JSON error shape)."""
    body = json.dumps({"error": "request_timeout", "request_id": "",
                       "detail": f"the request head (request line and headers) did not arrive within {timeout_s:g} s "
                                 "(serve.header_timeout_s)"}).encode()
    head = ("HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    return head + body


def install() -> list:
    """Serve's proxy hook: patches uvicorn's HTTP protocols in this process; adds no middleware."""
    raw = os.environ.get(TIMEOUT_ENV, "15")
    try:
        timeout_s = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected seconds (a number > 0)") from None
    if timeout_s <= 0:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected seconds (a number > 0)")
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    for protocol in (HttpToolsProtocol, H11Protocol):
        add_head_deadline(protocol, timeout_s)
    log.info("request heads must arrive within %g s", timeout_s)
    return []


def add_head_deadline(protocol: type, timeout_s: float) -> None:
    """Wraps an asyncio HTTP protocol class that keeps its request cycle in `self.cycle`: a timer runs
    while a request head is awaited and stops when a new cycle (a parsed head) appears."""
    if getattr(protocol, _PATCHED, None) is not None:
        setattr(protocol, _PATCHED, timeout_s)
        return
    setattr(protocol, _PATCHED, timeout_s)
    connection_made, data_received, connection_lost = (
        protocol.connection_made, protocol.data_received, protocol.connection_lost)

    def awaiting_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def start(self) -> None:
        if getattr(self, "_head_timer", None) is None:
            self._head_timer = self.loop.call_later(getattr(protocol, _PATCHED), expire, self)

    def stop(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def expire(self) -> None:
        self._head_timer = None
        if not awaiting_head(self) or self.transport.is_closing():
            return
        self.transport.write(timeout_response(getattr(protocol, _PATCHED)))
        self.transport.close()

    def patched_connection_made(self, transport) -> None:
        connection_made(self, transport)
        self._head_timer = None
        start(self)

    def patched_data_received(self, data: bytes) -> None:
        cycle = self.cycle
        data_received(self, data)
        if self.cycle is not cycle:  # a head was parsed: its request now runs under the body deadline
            stop(self)
        if awaiting_head(self) and not self.transport.is_closing():
            start(self)  # part of the next head arrived (keep-alive idling has its own timeout)

    def patched_connection_lost(self, exc) -> None:
        stop(self)
        connection_lost(self, exc)

    protocol.connection_made = patched_connection_made
    protocol.data_received = patched_data_received
    protocol.connection_lost = patched_connection_lost
