"""The Ray Serve application: a FastAPI ingress in front of the model deployment.

    GET  /                      web page: upload an image, see both translations
    GET  /healthz               {"status": "ok"}; never needs the token
    GET  /info                  method, checkpoint, image size, directions, limits (token if set)
    GET  /metrics               Prometheus text format; never needs the token
    GET  /examples[/{index}]    the page's example images from the held-out split (token if set)
    GET  /openapi.json          the OpenAPI schema of these routes
    POST /translate?direction=a2b|b2a[&resolution=model|full]
                                body: PNG/JPEG bytes (Content-Type image/png or image/jpeg), or a
                                multipart/form-data form with the image in field "image";
                                answer: image/png at the input's width x height

The input is resized to the model's training size, translated and resized back, so any size
works (up to serve.max_pixels). Errors are JSON `{"error", "detail"}` with the statuses listed in
crossnet_dist/serving/requests.py. With a token configured (serve.token or env
CROSSNET_SERVE_TOKEN), /translate and /info need `Authorization: Bearer <token>` (else 401).

The ingress runs as one replica and checks requests (type, size, header) without decoding;
the model deployment (N replicas, or autoscaled) decodes, batches and translates. Backpressure:
a model replica holds at most serve.max_ongoing_requests requests, and at most
serve.max_queued_requests more wait at the ingress; beyond that the answer is 503.
The application is built in crossnet_dist/serving/deploy.py (a Serve config names deploy:build_app).
"""


import asyncio
import hmac
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve
from ray.serve.exceptions import BackPressureError
from starlette.exceptions import HTTPException as StarletteHTTPException

from crossnet_dist.serving.client_budget import ClientBudgets, client_address
from crossnet_dist.serving.loopback import bind_replica_grpc_to_loopback
from crossnet_dist.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from crossnet_dist.serving.metrics import ServeMetrics
from crossnet_dist.serving.requests import (
    FORM_FIELD,
    MULTIPART_TYPE,
    RequestRejected,
    body_too_large,
    check_declared_length,
    check_direction,
    check_full_resolution_pixels,
    check_part_content_type,
    check_raw_content_type,
    check_resolution,
    probe_image,
)

log = logging.getLogger(__name__)
TOKEN_ENV = "CROSSNET_SERVE_TOKEN"  # nosec B105 - the name of the variable, not a token
STATIC_DIR = Path(__file__).resolve().parent / "static"
# The OpenAPI schema (GET /openapi.json) describes every route, /translate's raw-image and multipart
# bodies and the JSON error shape; the API fuzz test generates its requests from it.
api = FastAPI(title="crossnet translation endpoint", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
_ERROR_SCHEMA = {"type": "object", "required": ["error", "detail", "request_id"], "properties": {
    "error": {"type": "string"}, "detail": {"type": "string"}, "request_id": {"type": "string"}}}
_ERROR_RESPONSE = {"content": {"application/json": {"schema": _ERROR_SCHEMA}}}
_TRANSLATE_OPENAPI = {
    "requestBody": {"required": True, "content": {
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                           "properties": {"image": {"type": "string", "format": "binary"}}}},
    }},
    "responses": {
        "200": {"description": "the translation, a PNG of the input's size", "content": {"image/png": {}}},
        **{code: {"description": why, **_ERROR_RESPONSE} for code, why in (
            ("400", "bad direction, empty body, not a readable image"), ("401", "token missing or wrong"),
            ("413", "too many bytes or pixels"), ("415", "not PNG/JPEG"),
            ("429", "the client used its share of replica time; Retry-After"), ("500", "server fault"),
            ("503", "overloaded; Retry-After"))},
    },
}


def _static(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


RETRY_AFTER_S = "1"  # what a 503 (every replica busy) tells a client to wait


def _error(err: RequestRejected, request_id: str | None = None) -> JSONResponse:
    """Every error of the app, its HTTP layer included: JSON {"error", "detail", "request_id"}."""
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else {}
    headers.update(err.headers)
    if err.status == 503:
        headers["Retry-After"] = RETRY_AFTER_S
    request_id = request_id or uuid.uuid4().hex
    headers["X-Request-ID"] = request_id
    return JSONResponse({**err.body(), "request_id": request_id}, status_code=err.status, headers=headers)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "body_too_large", 408: "request_timeout"}


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else "the request was refused"
    if exc.status_code == 404:
        detail = f"no route {request.url.path!r}: see GET / (the page), POST /translate, GET /info, /healthz, /metrics"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path!r}"
    return _error(RequestRejected(exc.status_code, code, detail))


# Set by the ingress replica for its process. Not on `api.state` nor a module global: serve.ingress
# serialises the app and the class, so the replica's middleware and __init__ see different copies of both.
HEADER_LIMIT_ENV = "CROSSNET_SERVE_MAX_HEADER_BYTES"


@api.middleware("http")
async def _limit_headers(request: Request, call_next):
    """Every route: headers beyond serve.max_header_bytes in all get 431 before any work."""
    limit = int(os.environ.get(HEADER_LIMIT_ENV, "0")) or None
    if limit is not None:
        size = sum(len(name) + len(value) + 4 for name, value in request.headers.raw)
        if size > limit:
            return _error(RequestRejected(431, "headers_too_large",
                                          f"the request headers are {size} bytes, more than {limit} (serve.max_header_bytes)"))
    return await call_next(request)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return _error(RequestRejected(400, "bad_request", "the request's parameters are malformed"))


def server_timing(model: dict[str, float], call_s: float, ingress_s: float) -> str:
    """The Server-Timing header (ms) of one translation: where its time went after the HTTP proxy.
    ingress = the ingress replica's whole handling; hop = its call to the model replica minus the
    model's own parts (Ray's transport both ways, and the replica's event loop and threads)."""
    parts = {"ingress": ingress_s, "hop": max(0.0, call_s - sum(model.values())), **model}
    return ", ".join(f"{name};dur={seconds * 1e3:.2f}" for name, seconds in parts.items())


def client_went_away(err: BaseException) -> bool:
    """A client hang-up however Serve and Starlette deliver it: Starlette's ClientDisconnect, or Serve's
    cancelled task that relays the body from the proxy (ray's TaskCancelledError), possibly inside the
    ExceptionGroup of Starlette's middleware task group."""
    from ray.exceptions import TaskCancelledError
    from starlette.requests import ClientDisconnect

    if isinstance(err, BaseExceptionGroup):
        return all(client_went_away(e) for e in err.exceptions)
    return isinstance(err, (ClientDisconnect, TaskCancelledError))


def admitted_requests(settings: dict[str, Any]) -> int:
    """Requests one replica takes at once in topology single, queued ones included."""
    return int(settings["max_ongoing_requests"]) + max(int(settings["max_queued_requests"]), 0)


@serve.ingress(api)
class TranslationIngress:
    def __init__(self, model, settings: dict[str, Any], checkpoint: str | None = None):
        """`model`: the model deployment's handle (topology split), or None with `checkpoint` to load
        the model into this replica (topology single, serving/deploy.py)."""
        bind_replica_grpc_to_loopback()
        self.admitted: int | None = None  # in-flight translations this replica takes (single), else the handle's
        if model is None:
            from crossnet_dist.serving.model import InProcessModel

            model = InProcessModel(checkpoint, settings)
            self.admitted = admitted_requests(settings)
        self.model = model
        self.active = 0
        self.settings = settings
        self.token = settings.get("token") or os.environ.get(TOKEN_ENV) or None
        self.max_body_bytes = int(settings["max_body_bytes"])
        self.body_timeout_s = float(settings["body_timeout_s"])
        os.environ[HEADER_LIMIT_ENV] = str(int(settings["max_header_bytes"]))
        self.max_pixels = int(settings["max_pixels"])
        self.max_full_pixels = int(settings["max_full_pixels"])
        self.budgets = ClientBudgets(settings["client_replica_s_per_s"], settings["client_burst_s"])
        self.trust_forwarded_for = bool(settings["trust_forwarded_for"])
        self.metrics = ServeMetrics()
        self._examples: list[dict[str, Any]] | None = None  # the model's held-out examples, asked once
        self.page = _static("index.html")
        self.script = _static("app.js")

    # ---- open routes ----------------------------------------------------------------------
    @api.get("/", response_class=HTMLResponse)
    async def page(self) -> HTMLResponse:
        return HTMLResponse(self.page)

    @api.get("/app.js")
    async def page_script(self) -> Response:
        return Response(self.script, media_type="text/javascript")

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/metrics")
    async def metrics(self) -> Response:
        return Response(self.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    # ---- routes behind the token ------------------------------------------------------------
    @api.get("/info")
    async def info(self, request: Request) -> JSONResponse:
        if (refused := self._refused(request)) is not None:
            return refused
        model = await self.model.info.remote()
        self.metrics.observe_model(model)
        limits = {k: self.settings[k] for k in (
            "max_body_bytes", "max_pixels", "max_full_pixels", "client_replica_s_per_s", "client_burst_s",
            "max_batch_size", "batch_wait_timeout_s", "max_ongoing_requests",
            "max_queued_requests")}
        return JSONResponse({
            **{k: model[k] for k in ("method", "checkpoint", "backend", "image_size", "directions", "resolutions",
                                     "device", "best_pointer", "model_revision", "replica", "step", "ema")},
            "resize": "inputs are resized to image_size x image_size, translated, and resized back to their own size",
            "formats": ["image/png", "image/jpeg", f"{MULTIPART_TYPE} (field '{FORM_FIELD}')"],
            "auth": self.token is not None,
            "limits": limits,
        })

    @api.get("/examples")
    async def examples(self, request: Request) -> JSONResponse:
        """The held-out images the web page offers: [{"index", "domain", "direction", "name", "width", "height"}]."""
        if (refused := self._refused(request)) is not None:
            return refused
        return JSONResponse([{"index": i, **{k: v for k, v in e.items() if k != "png"}}
                             for i, e in enumerate(await self._held_out())])

    @api.get("/examples/{index}", response_class=Response,
             responses={"200": {"content": {"image/png": {}}}, "401": _ERROR_RESPONSE, "404": _ERROR_RESPONSE})
    async def example(self, request: Request, index: int) -> Response:
        try:
            self._check_token(request)
            found = await self._held_out()
            if not 0 <= index < len(found):
                raise RequestRejected(404, "not_found", f"no example {index}: GET /examples lists {len(found)}")
        except RequestRejected as err:
            return _error(err)
        return Response(found[index]["png"], media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    async def _held_out(self) -> list[dict[str, Any]]:
        if self._examples is None:
            self._examples = await self.model.examples.remote()
        return self._examples

    @api.post("/translate", openapi_extra=_TRANSLATE_OPENAPI)
    async def translate(
        self, request: Request,
        direction: Optional[str] = Query(None, description="a2b or b2a", json_schema_extra={"enum": ["a2b", "b2a"]}),
        resolution: Optional[str] = Query(
            None, description="model (default): through the model's training size; full: at the image's own size "
            "(tiled above serve.full_resolution_tile px)", json_schema_extra={"enum": ["model", "full"]}),
    ) -> Response:
        start = time.perf_counter()
        self.metrics.in_flight.inc()
        self.active += 1
        try:
            if self.admitted is not None and self.active > self.admitted:
                raise BackPressureError(num_queued_requests=self.active, max_queued_requests=self.admitted)
            response = await self._translate(request, direction, resolution)
        except RequestRejected as err:
            response = _error(err)
        except asyncio.CancelledError:  # Serve cancels the request of a client that hung up: a 499, not a fault
            self.metrics.observe("translate", 499, time.perf_counter() - start)
            raise
        except BackPressureError:
            response = _error(
                RequestRejected(503, "overloaded", "every model replica is busy and the queue is full; retry later")
            )
        except Exception as err:  # noqa: BLE001 - the cause goes to the log, never to the client
            if client_went_away(err):
                response = _error(RequestRejected(499, "client_closed_request", "the client hung up"))
            else:
                request_id = uuid.uuid4().hex
                log.exception("translation failed (request %s)", request_id)
                response = _error(RequestRejected(
                    500, "internal", "the translation failed on the server; the request id finds the cause in its log"),
                    request_id)
        finally:
            self.active -= 1
            self.metrics.in_flight.dec()
        self.metrics.observe("translate", response.status_code, time.perf_counter() - start)
        return response

    async def _translate(self, request: Request, direction: Optional[str], resolution: Optional[str]) -> Response:
        started = time.perf_counter()
        self._check_token(request)
        direction = check_direction(direction)
        resolution = check_resolution(resolution)
        kind = check_raw_content_type(request.headers.get("content-type"))
        check_declared_length(request.headers.get("content-length"), self.max_body_bytes)
        body = await self._read_body(request)
        data = await self._form_image(request, body) if kind == MULTIPART_TYPE else body
        header = probe_image(data, self.max_pixels)
        check_full_resolution_pixels(header, resolution, self.max_full_pixels)
        client = client_address(request.client, request.headers.get("x-forwarded-for"), self.trust_forwarded_for)
        pixels = header.width * header.height
        estimate = self.budgets.admit(client, pixels, resolution)
        called = time.perf_counter()
        try:
            result = await self.model.translate.remote(data, direction, resolution)
        except BaseException:
            self.budgets.settle(client, estimate, estimate, pixels, resolution)  # failed or cancelled: the estimate stands
            raise
        returned = time.perf_counter()
        self.budgets.settle(client, estimate, float(result.get("work_s", estimate)), pixels, resolution)
        self.metrics.observe_model(result)
        if "png" not in result:
            raise RequestRejected(result["status"], result["error"], result["detail"])
        return Response(result["png"], media_type="image/png", headers={
            "Server-Timing": server_timing(result["timing"], returned - called, returned - started),
            "X-Input-Size": f"{header.width}x{header.height}", "X-Direction": direction, "X-Resolution": resolution,
            "X-Model-Revision": result["model_revision"],  # which model answered (it changes with an in-place upgrade)
        })

    def _refused(self, request: Request) -> JSONResponse | None:
        """The 401 answer of a request without the right token, else None."""
        try:
            self._check_token(request)
        except RequestRejected as err:
            return _error(err)
        return None

    def _check_token(self, request: Request) -> None:
        if self.token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token.encode()):
            reason = "missing bearer token" if not given else "wrong bearer token"
            raise RequestRejected(401, "unauthorized", f"{reason}: send 'Authorization: Bearer <token>'")

    async def _read_body(self, request: Request) -> bytes:
        """The whole body within serve.body_timeout_s (a client that stalls mid-body gets 408), at most
        serve.max_body_bytes (413)."""
        chunks, total = [], 0

        async def read() -> None:
            nonlocal total
            async for chunk in request.stream():
                total += len(chunk)
                if total > self.max_body_bytes:
                    raise body_too_large(self.max_body_bytes)
                chunks.append(chunk)

        from starlette.requests import ClientDisconnect

        try:
            await asyncio.wait_for(read(), self.body_timeout_s)
        except ClientDisconnect:  # the client's doing: counted as 499 (nobody reads the answer), not as a fault
            raise RequestRejected(499, "client_closed_request", f"the client hung up after {total} bytes of "
                                  "the body") from None
        except asyncio.TimeoutError:
            raise RequestRejected(408, "request_timeout", f"the body did not arrive within {self.body_timeout_s:g} s "
                                  f"({total} bytes received; serve.body_timeout_s)") from None
        return b"".join(chunks)

    async def _form_image(self, request: Request, body: bytes) -> bytes:
        from starlette.datastructures import UploadFile
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def replay():
            yield body

        try:
            form = await MultiPartParser(request.headers, replay(), max_files=4, max_fields=16).parse()
        except (MultiPartException, ValueError, KeyError) as err:
            raise RequestRejected(400, "bad_form", f"the multipart form could not be parsed ({err})") from None
        part = form.get(FORM_FIELD)
        if part is None:
            part = next((v for v in form.values() if isinstance(v, UploadFile)), None)
        if part is None:
            raise RequestRejected(400, "empty_body", f"the form has no '{FORM_FIELD}' file field")
        if isinstance(part, str):
            raise RequestRejected(400, "not_an_image", f"form field '{FORM_FIELD}' is text, not an uploaded file")
        check_part_content_type(part.content_type)
        data = await part.read()
        await part.close()
        return data
