"""`crossnet` command line: train, translate, data, storage, eval, serve, tune."""

from __future__ import annotations

import argparse
import logging
import sys

from crossnet_dist.config import ConfigError
from crossnet_dist.data.errors import DatasetError


def _train(args: argparse.Namespace) -> int:
    from crossnet_dist.config import load_config

    cfg = load_config(args.config, args.overrides)
    if not args.local:
        return _train_distributed(cfg, args)

    from crossnet_dist.data import build_train_loader
    from crossnet_dist.training.loop import Trainer

    if args.address:
        raise ConfigError("--address needs distributed training: drop --local")
    trainer = Trainer(cfg)
    if args.resume is not None:
        loaded = trainer.resume(args.resume or None)
        print(f"resumed from {loaded} at step {trainer.step}" if loaded else "no checkpoint to resume: starting fresh")
    loader = build_train_loader(cfg.data, image_size=cfg.model.image_size, seed=cfg.train.seed,
                                pin_memory=trainer.pin_memory)
    metrics = trainer.fit(loader)
    print(f"done: {trainer.step} steps; serving checkpoint {trainer.out_dir / 'generator.pt'}")
    for key in sorted(metrics):
        print(f"  {key} = {metrics[key]:.4f}")
    return 0


def _train_distributed(cfg, args: argparse.Namespace) -> int:
    from crossnet_dist.distributed import train_distributed

    result = train_distributed(cfg, address=args.address, resume=args.resume)
    summary = result.summary
    print(f"done: run {result.run_name}, {result.step} steps on {summary.get('world_size', '?')} workers "
          f"(ZeRO-{summary.get('zero_stage', '?')}); steps lost to failures: {summary.get('lost_steps', 0)}")
    print(f"checkpoints: {result.run_url}")
    print(f"serving checkpoint: {result.generator_url}")
    for key in sorted(result.metrics):
        if key.startswith(("loss/", "perf/", "data/", "fault/")):
            print(f"  {key} = {result.metrics[key]:.4f}")
    return 0


def _translate(args: argparse.Namespace) -> int:
    if args.endpoint:
        if args.tile is not None:
            print("error: --tile is for --checkpoint; an endpoint tiles with its own serve.full_resolution_tile",
                  file=sys.stderr)
            return 2
        from crossnet_dist.serving.cli import run_translate_remote

        return run_translate_remote(args)
    from crossnet_dist.translate import TranslateOptionError, translate_files

    try:
        report = translate_files(args.checkpoint, args.direction, args.inputs, args.out, device=args.device,
                                 resolution=args.resolution, tile=args.tile, overlap=args.overlap)
    except TranslateOptionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(report.written)} images to {args.out}")
    for source, reason in report.skipped.items():
        print(f"skipped {source}: {reason}", file=sys.stderr)
    return 0 if report.written or not report.skipped else 1


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

    train = sub.add_parser(
        "train",
        help="train a method from a YAML config",
        description="Train from CONFIG (YAML under jobs/configs/) with dotted overrides, e.g. optim.lr=1e-4 "
        "method=cyclegan train.max_steps=100. Unknown keys and bad values fail before training starts. "
        "By default training runs on Ray Train workers with DeepSpeed ZeRO (see the dist.* keys); "
        "--local trains in this process.",
    )
    train.add_argument("config", help="YAML config file")
    train.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    train.add_argument(
        "--resume", nargs="?", const="", default=None, metavar="RUN",
        help="distributed: continue run RUN (a folder name under dist.storage_path), or the newest run if none "
        "is given; --local: continue from checkpoint file RUN, or the newest one in train.out_dir",
    )
    train.add_argument(
        "--local", action="store_true",
        help="train in this process (CPU or one GPU) instead of on Ray Train workers with DeepSpeed",
    )
    train.add_argument(
        "--address", default=None,
        help="Ray cluster address (default: dist.address, else RAY_ADDRESS, else start a local Ray on 127.0.0.1)",
    )
    train.set_defaults(func=_train)

    translate = sub.add_parser(
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
    translate.set_defaults(func=_translate)

    from crossnet_dist.data.cli import add_data_parser, add_storage_parser
    from crossnet_dist.evaluation.cli import add_eval_parser

    add_data_parser(sub)
    add_storage_parser(sub)
    add_eval_parser(sub)
    from crossnet_dist.serving.cli import add_serve_parser

    add_serve_parser(sub)
    from crossnet_dist.tuning.cli import add_tune_parser

    add_tune_parser(sub)
    from crossnet_dist.export.cli import add_export_parser

    add_export_parser(sub)
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
        from crossnet_dist.training.checkpoint import CheckpointError
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
