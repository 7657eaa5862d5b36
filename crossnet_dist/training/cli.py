"""`crossnet train`: one config, trained in this process (--local) or on Ray Train workers with DeepSpeed."""

from __future__ import annotations

import argparse

from crossnet_dist.config_errors import ConfigError


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    train = subparsers.add_parser(
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
    train.set_defaults(func=run_train)
    return train


def run_train(args: argparse.Namespace) -> int:
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
    from crossnet_dist.training.stop_signal import stop_on_sigterm

    with stop_on_sigterm(lambda reason: setattr(trainer, "stop_requested", reason)):
        metrics = trainer.fit(loader)
    if trainer.stop_requested is not None:
        print(f"stopped by {trainer.stop_requested} after step {trainer.step}: checkpoint written to "
              f"{trainer.out_dir / 'checkpoints'}; continue with the same command and --resume")
        return 128 + 15  # how a process ended by SIGTERM reports it
    print(f"done: {trainer.step} steps; serving checkpoint {trainer.out_dir / 'generator.pt'}")
    for key in sorted(metrics):
        print(f"  {key} = {metrics[key]:.4f}")
    return 0


def _train_distributed(cfg, args: argparse.Namespace) -> int:
    from crossnet_dist.distributed import train_distributed

    result = train_distributed(cfg, address=args.address, resume=args.resume)
    summary = result.summary
    if summary.get("stopped"):
        print(f"stopped by {summary['stopped']} after step {result.step}: checkpoint {result.checkpoint_path}; "
              f"continue with the same command and --resume {result.run_name}")
        return 128 + 15
    print(f"done: run {result.run_name}, {result.step} steps on {summary.get('world_size', '?')} workers "
          f"(ZeRO-{summary.get('zero_stage', '?')}); steps lost to failures: {summary.get('lost_steps', 0)}")
    print(f"checkpoints: {result.run_url}")
    print(f"serving checkpoint: {result.generator_url}")
    for key in sorted(result.metrics):
        if key.startswith(("loss/", "perf/", "data/", "fault/")):
            print(f"  {key} = {result.metrics[key]:.4f}")
    return 0
