"""`crossnet serve` and the client mode of `crossnet translate --endpoint`."""

from __future__ import annotations

import argparse
import os
import signal
import threading


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    serve = subparsers.add_parser(
        "serve",
        help="serve a trained translator over HTTP with Ray Serve",
        description="Deploy CHECKPOINT (a generator.pt, or a folder holding one such as a campaign's best/ "
        "pointer; local or s3://) as a Ray Serve application: POST /translate?direction=a2b|b2a with a PNG/JPEG "
        "returns a PNG of the same size (inputs are resized to the model size and back); GET / is a web page, "
        "/healthz, /info and /metrics (Prometheus) are the rest. Settings are the serve.* config keys "
        "(jobs/configs/serve.yaml); flags below override them. Without --address/RAY_ADDRESS a local Ray is "
        "started on 127.0.0.1 and the command stays in the foreground until Ctrl-C. Run against a cluster "
        "(--address) where the application already runs, it upgrades it in place: Serve swaps in replicas "
        "with the new checkpoint without dropping a request.",
    )
    serve.add_argument("--checkpoint", required=True, help="generator.pt or a folder containing it (path or s3:// URL)")
    serve.add_argument("--config", default=None, help="YAML config whose serve: section applies (default: built-in)")
    serve.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. serve.max_batch_size=16")
    scale = serve.add_mutually_exclusive_group()
    scale.add_argument("--replicas", type=int, default=None, help="fixed number of model replicas (serve.replicas)")
    scale.add_argument(
        "--autoscale", action="store_true",
        help="autoscale model replicas between serve.min_replicas and serve.max_replicas",
    )
    serve.add_argument("--host", default=None, help="HTTP address (serve.host, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="HTTP port (serve.port, default 8000)")
    serve.add_argument("--address", default=None, help="existing Ray cluster (default: RAY_ADDRESS, else a local Ray)")
    serve.add_argument(
        "--blocking", action="store_true",
        help="stay in the foreground until Ctrl-C, then remove the application (always so with a local Ray)",
    )
    serve.set_defaults(func=run_serve)
    return serve


def serve_overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.overrides)
    if args.replicas is not None:
        extra += [f"serve.replicas={args.replicas}", "serve.autoscale=false"]
    if args.autoscale:
        extra.append("serve.autoscale=true")
    if args.host is not None:
        extra.append(f"serve.host={args.host}")
    if args.port is not None:
        extra.append(f"serve.port={args.port}")
    return extra


def check_checkpoint(checkpoint: str, serve_cfg) -> None:
    """Loads the checkpoint here with the replicas' backend, before Ray deploys anything: a missing,
    empty, truncated or mismatched one fails at once with the one-line CheckpointError `crossnet
    translate` gives, not as a replica that never becomes healthy."""
    from crossnet_dist.serving.backends import build_backend
    from crossnet_dist.serving.deploy import serve_settings

    build_backend(checkpoint, serve_settings(serve_cfg), "cpu")


def run_serve(args: argparse.Namespace) -> int:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported
    from crossnet_dist.config import load_config
    from crossnet_dist.serving.server import start_endpoint, stop_endpoint

    cfg = load_config(args.config, serve_overrides(args))
    check_checkpoint(args.checkpoint, cfg.serve)
    endpoint = start_endpoint(args.checkpoint, cfg.serve, address=args.address)
    mode = f"autoscaling {cfg.serve.min_replicas}-{cfg.serve.max_replicas}" if cfg.serve.autoscale else str(cfg.serve.replicas)
    if endpoint.upgraded:
        print(f"upgraded application '{endpoint.app_name}' in place: its model replicas now serve {args.checkpoint} "
              "(the old ones finished their requests; none was dropped)", flush=True)
    print(f"serving {args.checkpoint} at {endpoint.url}/ ({mode} model replicas, batches of up to "
          f"{cfg.serve.max_batch_size}); metrics at {endpoint.url}/metrics", flush=True)
    if not (args.blocking or endpoint.started_ray):
        print(f"application '{endpoint.app_name}' left running on the Ray cluster; remove it with "
              f"`serve shutdown` or `serve delete {endpoint.app_name}`")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("press Ctrl-C to stop", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        stop_endpoint(endpoint)
        print("stopped", flush=True)
    return 0
