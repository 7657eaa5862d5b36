"""`crossnet` command line: train, translate, data, storage."""

from __future__ import annotations

import argparse
import logging
import sys

from crossnet_dist.config import ConfigError


def _train(args: argparse.Namespace) -> int:
    from crossnet_dist.config import load_config
    from crossnet_dist.data import build_train_loader
    from crossnet_dist.training.loop import Trainer

    cfg = load_config(args.config, args.overrides)
    trainer = Trainer(cfg)
    if args.resume is not None:
        loaded = trainer.resume(args.resume or None)
        print(f"resumed from {loaded} at step {trainer.step}" if loaded else "no checkpoint to resume: starting fresh")
    loader = build_train_loader(cfg.data, image_size=cfg.model.image_size, seed=cfg.train.seed)
    metrics = trainer.fit(loader)
    print(f"done: {trainer.step} steps; serving checkpoint {trainer.out_dir / 'generator.pt'}")
    for key in sorted(metrics):
        print(f"  {key} = {metrics[key]:.4f}")
    return 0


def _translate(args: argparse.Namespace) -> int:
    from crossnet_dist.translate import translate_files

    report = translate_files(args.checkpoint, args.direction, args.inputs, args.out, device=args.device)
    print(f"wrote {len(report.written)} images to {args.out}")
    for source, reason in report.skipped.items():
        print(f"skipped {source}: {reason}", file=sys.stderr)
    return 0 if report.written or not report.skipped else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossnet",
        description="Train, evaluate and serve unpaired image-to-image translation (CrossNet and related methods).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train a method from a YAML config",
        description="Train from CONFIG (YAML under jobs/configs/) with dotted overrides, e.g. optim.lr=1e-4 "
        "method=cyclegan train.max_steps=100. Unknown keys and bad values fail before training starts.",
    )
    train.add_argument("config", help="YAML config file")
    train.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    train.add_argument(
        "--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
        help="continue from CHECKPOINT, or from the newest checkpoint in train.out_dir if none is given",
    )
    train.set_defaults(func=_train)

    translate = sub.add_parser(
        "translate",
        help="translate image files with a trained checkpoint",
        description="Translate PNG/JPEG files (or every image in the given folders) with a serving or "
        "training checkpoint. Inputs are resized to the model size and outputs resized back to the input size; "
        "outputs are written as OUT/<name>_<direction>.png.",
    )
    translate.add_argument("inputs", nargs="+", help="image files or folders")
    translate.add_argument("--checkpoint", required=True, help="generator.pt or a training checkpoint")
    translate.add_argument("--direction", required=True, choices=["a2b", "b2a"])
    translate.add_argument("--out", required=True, help="output folder")
    translate.add_argument("--device", default="cpu")
    translate.set_defaults(func=_translate)

    try:
        from crossnet_dist.data.cli import add_data_parser, add_storage_parser
    except ImportError:
        pass
    else:
        add_data_parser(sub)
        add_storage_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError) as err:
        print(f"crossnet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        from crossnet_dist.training.checkpoint import CheckpointError

        if isinstance(err, CheckpointError):
            print(f"crossnet {args.command}: error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
