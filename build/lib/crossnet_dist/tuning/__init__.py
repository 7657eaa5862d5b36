"""Ray Tune campaigns over the loss weights (`crossnet tune`): each trial a distributed training run
(crossnet_dist.distributed.build_trainer: Ray Train workers, DeepSpeed), scored on the held-out split
with the evaluation package at every checkpoint, ASHA by default, resumable, with a best pointer.

- `campaign.run_campaign(cfg, address=None, resume=None)`: start or resume a campaign;
- `trial.run_trial`: the Tune trainable (a trial driver around one TorchTrainer);
- `scoring`: a Train checkpoint's held-out score; `space`: tune.space as a Tune param space.
"""

from __future__ import annotations


def run_campaign(*args, **kwargs):
    from crossnet_dist.tuning.campaign import run_campaign as run

    return run(*args, **kwargs)


__all__ = ["run_campaign"]
