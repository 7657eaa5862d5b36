"""`crossnet translate`: image files through a checkpoint in this process, or through a running endpoint."""

from __future__ import annotations

import argparse
import sys


def add_translate_parser(subparsers) -> argparse.ArgumentParser:
    translate = subparsers.add_parser(
        "translate",
        help="translate image files with a trained checkpoint or a running endpoint",
        description="Translate PNG/JPEG files (or every image in the given folders) with a serving or "
        "training checkpoint, or through a running `crossnet serve` endpoint (--endpoint URL). Inputs are resized to "
        "the model size and outputs resized back to the input size; "
        "outputs are written as OUT/<name>_<direction>.png.",
    )
    translate.add_argument("inputs", nargs="+", help="image files or folders")
    source = translate.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="generator.pt or a training checkpoint (translate in this process)")
    source.add_argument(
        "--endpoint", metavar="URL",
        help="a running `crossnet serve` endpoint, e.g. http://127.0.0.1:8000 (translate remotely)",
    )
    translate.add_argument("--token", default=None, help="bearer token for --endpoint (default: env CROSSNET_SERVE_TOKEN)")
    translate.add_argument("--direction", required=True, choices=["a2b", "b2a"])
    translate.add_argument("--out", required=True, help="output folder")
    translate.add_argument("--device", default="cpu")
    translate.add_argument("--resolution", choices=["model", "full"], default="model",
                           help="model: through the training size (default); full: at each image's own size")
    translate.add_argument("--tile", type=int, default=None,
                           help="with --resolution full: translate images larger than this in overlapping tiles "
                                "of this many px (bounds memory; a multiple of 2**model.n_downsampling)")
    translate.add_argument("--overlap", type=int, default=32, help="px shared by neighbouring tiles (default 32)")
    translate.set_defaults(func=run_translate)
    return translate


def run_translate(args: argparse.Namespace) -> int:
    if args.endpoint:
        if args.tile is not None:
            print("error: --tile is for --checkpoint; an endpoint tiles with its own serve.full_resolution_tile",
                  file=sys.stderr)
            return 2
        return _translate_remote(args)
    from crossnet_dist.translate import TranslateOptionError, translate_files

    try:
        report = translate_files(args.checkpoint, args.direction, args.inputs, args.out, device=args.device,
                                 resolution=args.resolution, tile=args.tile, overlap=args.overlap)
    except TranslateOptionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return _report(report, args.out)


def _translate_remote(args: argparse.Namespace) -> int:
    from crossnet_dist.serving.client import RemoteTranslateError, translate_files_remote

    try:
        report = translate_files_remote(args.endpoint, args.direction, args.inputs, args.out, token=args.token,
                                        resolution=args.resolution)
    except RemoteTranslateError as err:
        print(f"crossnet translate: error: {args.endpoint}: {err}", file=sys.stderr)
        return 2
    return _report(report, args.out)


def _report(report, out: str) -> int:
    """What was written and skipped; exit status 1 when every input was skipped."""
    print(f"wrote {len(report.written)} images to {out}")
    for source, reason in report.skipped.items():
        print(f"skipped {source}: {reason}", file=sys.stderr)
    return 0 if report.written or not report.skipped else 1
