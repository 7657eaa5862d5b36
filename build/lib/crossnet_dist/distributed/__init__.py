"""Distributed training on Ray Train + DeepSpeed ZeRO: the only package that imports either.

- `driver.train_distributed(cfg, address=None, resume=None)`: what `crossnet train` runs;
- `worker.train_loop_per_worker`: the per-worker loop (engines, data shard, checkpoints, export);
- `engines`: DeepSpeed engines behind the trainer's OptimizerGroup protocol, memory accounting;
- `storage`: run folders on a local path or S3; `progress`, `telemetry`: what the run shows.

Methods are seen only through their interface (generators/discriminators, the shared
`train_step`, `translation_state_dict`), so every method trains here unchanged.
"""

from __future__ import annotations


def train_distributed(*args, **kwargs):
    from crossnet_dist.distributed.driver import train_distributed as run

    return run(*args, **kwargs)


__all__ = ["train_distributed"]
