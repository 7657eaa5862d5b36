"""`crossnet` command line: train, translate, data, storage, eval, serve, tune, export; each command's
parser and handler live beside what it runs (training/cli.py, translate_cli.py, data/cli.py, ...)."""

from __future__ import annotations

import argparse
import logging
import sys

from crossnet_dist.config_errors import ConfigError
from crossnet_dist.data.errors import DatasetError


def installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crossnet-dist")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossnet",
        description="Train, evaluate and serve unpaired image-to-image translation (CrossNet and related methods).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from crossnet_dist.data.cli import add_data_parser, add_storage_parser
    from crossnet_dist.evaluation.cli import add_eval_parser
    from crossnet_dist.export.cli import add_export_parser
    from crossnet_dist.serving.cli import add_serve_parser
    from crossnet_dist.training.cli import add_train_parser
    from crossnet_dist.translate_cli import add_translate_parser
    from crossnet_dist.tuning.cli import add_tune_parser

    for add in (add_train_parser, add_translate_parser, add_data_parser, add_storage_parser, add_eval_parser,
                add_serve_parser, add_tune_parser, add_export_parser):
        add(sub)
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Like parse_args, but `train` takes key=value overrides before or after its options."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "command", None) in ("train", "tune"):
        overrides = [item for item in extra if "=" in item and not item.startswith("-")]
        args.overrides = [*args.overrides, *overrides]
        extra = [item for item in extra if item not in overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ConfigError, DatasetError, FileNotFoundError) as err:
        print(f"crossnet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        from crossnet_dist.checkpoints.files import CheckpointError
        from crossnet_dist.training.divergence import DivergenceError

        if isinstance(err, CheckpointError):
            print(f"crossnet {args.command}: error: {err}", file=sys.stderr)
            return 2
        from crossnet_dist.storage.retry import StorageUnavailableError

        if isinstance(err, (DivergenceError, StorageUnavailableError)):
            print(f"crossnet {args.command}: error: {err}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
