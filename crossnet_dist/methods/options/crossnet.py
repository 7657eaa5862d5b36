"""CrossNet (papers/crossnet.txt): the loss weights of eq. 5; its networks take only the shared model keys."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CrossNetLossWeights:
    """Eq. 5 of the CrossNet paper; each weight may be 0 (the Fig. 5 ablation)."""

    gan: float = 1.0
    identity: float = 3.0  # L_Id, eq. 2
    cross_translation: float = 3.0  # L_CTC, eq. 3
    cross_identity: float = 6.0  # L_ZId, eq. 1
    latent_cycle: float = 6.0  # L_ZCyc, eq. 4
