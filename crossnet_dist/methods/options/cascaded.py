"""Cascaded deep translation (papers/cascaded-deep-translation.txt): the level trained, the
networks' caps, and the weights of eqs. 1-4."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CascadedOptions:
    """Cascaded deep translation (papers/cascaded-deep-translation.txt): one level per run."""

    vgg_weights: str = ""  # torchvision vgg19 state-dict file (e.g. vgg19-dcbb9e9d.pth)
    init_from: str = ""  # checkpoint (train or serving) of the previous stage: all generator-side weights
    train_level: int = 5  # 5..1: the translator pair of conv<level>_1 being trained; 0: the inversion nets
    finest_level: int = 3  # the cascade stops here and inverts (the paper trains 5, 4, 3)
    max_channels: int = 512  # caps translator/critic/inversion widths (512 = the paper, no cap)
    adain_hidden: int = 1000  # hidden units of the AdaIN parameter MLP (Table 4)
    critic_steps: int = 4  # WGAN-GP critic updates per translator update
    stats_batches: int = 50  # batches whose features estimate the per-domain channel mean/std


@dataclass
class CascadedLossWeights:
    """Cascaded eqs. 1-4 (lambda_gp = 10, lambda_cyc = lambda_idty = 100) and the inversion nets."""

    adv: float = 1.0  # L_adv, eq. 1 (translator side)
    gp: float = 10.0  # lambda_gp, eq. 1
    cycle: float = 100.0  # lambda_cyc, eq. 2
    identity: float = 100.0  # lambda_idty, eq. 3
    inv_pixel: float = 1.0  # inversion nets: image loss (not weighted in the paper)
    inv_gan: float = 0.01  # inversion nets: LSGAN term (not weighted in the paper)


def validate(cfg, fail) -> None:
    c = cfg.model.cascaded
    if c.train_level not in (0, 1, 2, 3, 4, 5):
        fail("model.cascaded.train_level", "must be 5..1 (a translator level) or 0 (the inversion networks)")
    if c.finest_level not in (1, 2, 3, 4, 5):
        fail("model.cascaded.finest_level", "must be in 1..5")
    if c.train_level and c.train_level < c.finest_level:
        fail("model.cascaded.train_level", f"must be >= model.cascaded.finest_level ({c.finest_level}) or 0")
    for key in ("max_channels", "adain_hidden", "critic_steps", "stats_batches"):
        if c[key] < 1:
            fail(f"model.cascaded.{key}", "must be >= 1")
    size = cfg.model.image_size
    if cfg.method == "cascaded" and (size % 16 or size < 32):
        fail("model.image_size", "cascaded needs a multiple of 16 >= 32 (conv5_1 is 1/16 of the image)")
