"""Connecting to Ray: an existing cluster (address or RAY_ADDRESS), or a new local one on 127.0.0.1.

Training, tuning and serving all start their local Ray here, so they share the same guards:
everything bound to 127.0.0.1 (see NOTES-stack.md), `address="local"` so that another Ray
already running on the machine is never joined by accident, and the dashboard's port chosen
up front and exported as RAY_API_SERVER_ADDRESS, so that Ray's own State API users (Ray
Train's placement-group cleaner) find this instance even where several run side by side.
"""

from __future__ import annotations

import logging
import os
import sys

from crossnet_dist.ports import LOOPBACK, free_port


def loopback_only() -> None:
    """Keeps a Ray started here on 127.0.0.1: Ray reads this flag when it is imported, so it is set
    in the environment (for the Ray processes started from here) and, if Ray is already imported,
    on its constants module."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo between local workers on loopback too
    if "ray._private.ray_constants" in sys.modules and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        sys.modules["ray._private.ray_constants"].ENABLE_RAY_CLUSTER = False


def quiet_local_defaults() -> None:
    """What a Ray of one machine announces on the console and need not (shown again with
    CROSSNET_SHOW_THIRD_PARTY_WARNINGS=1; a value the user set always wins):
    - Ray's notice that it turned token auth on for a new local cluster (its default; kept on);
    - Ray Train's preemption watcher: no node of a one-machine Ray is ever drained, and its actor,
      killed at the end of every run, makes Ray print a red actor-death error."""
    from crossnet_dist.distributed.quiet import SHOW_WARNINGS_ENV

    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    if os.environ.get(SHOW_WARNINGS_ENV, "") in ("", "0"):
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)


def start_local_ray(num_cpus: float | None = None, include_dashboard: bool = True, log_to_driver: bool = True) -> str:
    """Starts a new local Ray of this process on 127.0.0.1; returns its GCS address.

    The dashboard serves the State API that Ray Train and Tune use to release the placement
    groups of stopped runs; serving alone can do without it."""
    loopback_only()
    quiet_local_defaults()
    import ray

    dashboard = {}
    if include_dashboard:
        port = free_port()
        os.environ["RAY_API_SERVER_ADDRESS"] = f"http://{LOOPBACK}:{port}"
        dashboard = {"dashboard_host": LOOPBACK, "dashboard_port": port}
    ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), _node_ip_address=LOOPBACK,
             include_dashboard=include_dashboard, log_to_driver=log_to_driver, **dashboard)
    return ray.get_runtime_context().gcs_address


def connect_ray(address: str | None = None, num_cpus: float | None = None, include_dashboard: bool = True,
                log_to_driver: bool = True) -> bool:
    """Connects to `address` (or RAY_ADDRESS), else starts a local Ray on 127.0.0.1.
    Returns True when this call started Ray (the caller then shuts it down)."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        loopback_only()
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
        return False
    start_local_ray(num_cpus, include_dashboard, log_to_driver)
    return True
