"""Starting and stopping the endpoint: Ray (local on 127.0.0.1, or an existing cluster) + Serve.

    endpoint = start_endpoint("runs/tiny/generator.pt", cfg.serve)   # -> http://127.0.0.1:8000
    ...
    stop_endpoint(endpoint)
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

# Must be set before `import ray`: otherwise a local Ray listens on 0.0.0.0 (see NOTES-stack.md).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

log = logging.getLogger(__name__)
APP_NAME = "crossnet"
LOOPBACK = "127.0.0.1"


class EndpointError(RuntimeError):
    """The endpoint could not be started or did not become healthy."""


@dataclass
class Endpoint:
    url: str  # http://host:port/prefix (no trailing slash)
    app_name: str
    started_ray: bool  # this process started a local Ray, and stops it with the endpoint
    upgraded: bool = False  # the application was already running: Serve upgraded it in place


def connect_ray(address: str | None = None, num_cpus: float | None = None, header_timeout_s: float = 15.0) -> bool:
    """An existing cluster, or a local Ray on 127.0.0.1 without the dashboard (Serve needs none).
    A local Ray's Serve proxy gives each request head `header_timeout_s` (serving/header_deadline.py);
    a cluster's nodes set the same environment themselves (infra/k8s/rayservice.yaml)."""
    import ray

    from crossnet_dist.ray_local import connect_ray as connect
    from crossnet_dist.serving.header_deadline import proxy_environment

    if not (address or os.environ.get("RAY_ADDRESS") or ray.is_initialized()):
        os.environ.update(proxy_environment(header_timeout_s))  # inherited by the local Ray's processes
    return connect(address, num_cpus, include_dashboard=False, log_to_driver=False)


def start_endpoint(
    checkpoint: str,
    serve_cfg: Any,
    address: str | None = None,
    app_name: str = APP_NAME,
    route_prefix: str = "/",
    num_cpus: float | None = None,
    ready_timeout_s: float = 180.0,
) -> Endpoint:
    """Deploys the application (starting Ray and Serve if needed) and waits until /healthz and a
    model replica answer. Serve's HTTP proxy listens on serve.host:serve.port.

    An application of the same name already running is upgraded in place: Serve replaces its model
    replicas (a rolling update; an old replica stops taking requests, finishes those it holds, then is
    replaced), and requests arriving while no replica is up wait in the handle's queue instead of
    failing. `serve.run` returns once the new replicas run, so this returns after the swap."""
    from ray import serve

    from crossnet_dist.serving.deploy import build_application

    started_ray = connect_ray(address, num_cpus, serve_cfg.header_timeout_s)
    try:
        serve.start(http_options={"host": serve_cfg.host, "port": int(serve_cfg.port)})
        upgraded = app_name in serve.status().applications
        serve.run(build_application(str(checkpoint), serve_cfg), name=app_name, route_prefix=route_prefix, blocking=False)
        host = LOOPBACK if serve_cfg.host in ("0.0.0.0", "::") else serve_cfg.host  # nosec B104 - a wildcard bind is reached on loopback
        url = f"http://{host}:{int(serve_cfg.port)}{route_prefix.rstrip('/')}"
        wait_ready(url, serve_cfg.token or os.environ.get("CROSSNET_SERVE_TOKEN"), ready_timeout_s)
    except BaseException:
        if started_ray:
            _shutdown(True)
        raise
    return Endpoint(url, app_name, started_ray, upgraded)


def wait_ready(url: str, token: str | None, timeout_s: float) -> dict:
    """Polls GET /info (which needs a model replica) until it answers 200."""
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(f"{url}/info", headers={"Authorization": f"Bearer {token}"} if token else {})
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310 - an http:// URL built here
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            last = str(err)
        time.sleep(0.25)
    raise EndpointError(f"endpoint {url} not ready after {timeout_s:.0f}s ({last})")


def stop_endpoint(endpoint: Endpoint) -> None:
    """Deletes the application; shuts Serve and Ray down when this process started Ray."""
    from ray import serve

    if endpoint.started_ray:
        _shutdown(True)
    else:
        serve.delete(endpoint.app_name)


def _shutdown(stop_ray: bool) -> None:
    """Stops Serve; with `stop_ray` (a Ray this process started) the whole local Ray, Serve with it:
    serve.shutdown() first would kill its controller in the middle of its own graceful-shutdown task,
    which Ray reports on the console as a failed task."""
    import ray
    from ray import serve

    if stop_ray:
        ray.shutdown()
    else:
        serve.shutdown()
