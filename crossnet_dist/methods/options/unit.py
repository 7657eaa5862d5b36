"""UNIT (papers/unit.txt): options of its shared-latent networks and the weights of eqs. 2-8."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class UNITOptions:
    """UNIT (papers/unit.txt): encoders are 3 convs (the 7x7 one + model.n_downsampling stride-2 ones)
    + model.n_encoder_blocks residual blocks; generators mirror them."""

    shared_layers: int = 1  # residual blocks tied between E_a/E_b (their last) and G_a/G_b (their first)


@dataclass
class UNITLossWeights:
    """UNIT eqs. 2-8 with the paper's defaults (sec. 4)."""

    gan: float = 10.0  # lambda_0, eqs. 5-6
    kl: float = 0.1  # lambda_1, eqs. 3-4
    recon: float = 100.0  # lambda_2, eqs. 3-4
    cycle_kl: float = 0.1  # lambda_3, eqs. 7-8
    cycle_recon: float = 100.0  # lambda_4, eqs. 7-8


def validate(cfg, fail) -> None:
    m = cfg.model
    if not 0 <= m.unit.shared_layers <= m.n_encoder_blocks:
        fail("model.unit.shared_layers", f"must be in [0, model.n_encoder_blocks={m.n_encoder_blocks}]")
