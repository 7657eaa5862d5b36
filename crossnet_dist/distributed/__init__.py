"""Distributed training on Ray Train + DeepSpeed ZeRO: the only package that imports either.

- `driver.train_distributed(cfg, address=None, resume=None)`: what `crossnet train` runs;
- `worker.train_loop_per_worker`: a rank running the shared epoch loop (training/epochs.py);
- `engines`: DeepSpeed engines behind the trainer's OptimizerGroup protocol, memory accounting;
- `checkpoint`: the DeepSpeed checkpoint (each rank's files, resume, the serving export);
- `progress`, `telemetry`: what the run shows. Run folders are storage/runs.py's.

Methods are seen only through their interface (generators/discriminators, the shared
`train_step`, `translation_state_dict`), so every method trains here unchanged.
"""

from __future__ import annotations


def train_distributed(*args, **kwargs):
    from crossnet_dist.distributed.driver import train_distributed as run

    return run(*args, **kwargs)


__all__ = ["train_distributed"]
