"""An HTTP proxy on 127.0.0.1 in front of the real S3 server: it records every request it forwards
and can fail chosen object GETs (503 SlowDown, or a dropped connection)."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")


class FaultProxy:
    """Forwards S3 requests to `upstream`; the first `faults` object GETs fail as listed in `modes`
    ("503" or "drop", cycled), or every object GET fails if `faults` is None. `requests` records
    (method, decoded path, query) of every request received."""

    def __init__(self, upstream: str, faults: int | None, modes=("503", "drop")):
        self.upstream = urlsplit(upstream)
        self.faults, self.modes = faults, modes
        self.injected = 0
        self.requests: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                fault = proxy.next_fault(self.command, self.path)
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault == "503":
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN)
                    return
                self.forward()

            do_PUT = do_POST = do_HEAD = do_DELETE = do_GET

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=10)
                upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def next_fault(self, method: str, path: str) -> str | None:
        parts = urlsplit(path)
        with self.lock:
            self.requests.append((method, unquote(parts.path), unquote(parts.query)))
        is_object_get = method == "GET" and parts.path.strip("/").count("/") >= 1 and "list-type" not in parts.query
        if not is_object_get:
            return None
        with self.lock:
            if self.faults is not None and self.injected >= self.faults:
                return None
            mode = self.modes[self.injected % len(self.modes)]
            self.injected += 1
            return mode

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
