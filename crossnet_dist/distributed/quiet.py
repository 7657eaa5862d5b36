"""A worker's console: what third-party code prints that says nothing to a user of this project."""

from __future__ import annotations

import logging
import os
import warnings

SHOW_WARNINGS_ENV = "CROSSNET_SHOW_THIRD_PARTY_WARNINGS"
# Third-party warnings known to be harmless here, printed once per worker per run otherwise: DeepSpeed
# (0.19) gathers ZeRO partitions with the deprecated torch.distributed.all_gather_into_tensor.
KNOWN_HARMLESS_WARNINGS = ((FutureWarning, r"`torch\.distributed\.all_gather_into_tensor` is deprecated"),)


def quiet_known_warnings() -> None:
    """Silences KNOWN_HARMLESS_WARNINGS in this process, unless CROSSNET_SHOW_THIRD_PARTY_WARNINGS=1."""
    if os.environ.get(SHOW_WARNINGS_ENV, "") not in ("", "0"):
        return
    for category, message in KNOWN_HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def quiet_report_echo() -> None:
    """Ray Train logs every report's full metrics dict at INFO from each worker; the driver's
    progress lines already show them, so keep only its warnings."""
    from ray.train.v2._internal.execution import context

    logging.getLogger(context.__file__).setLevel(logging.WARNING)
