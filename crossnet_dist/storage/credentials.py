"""The one place that reads S3 settings: a StorageConfig (or mapping) first, then the AWS_* environment.

Both filesystems are built from `s3_settings`: the fsspec one (`urls.s3_options`, for data and
checkpoints) and the pyarrow one (`runs.s3_filesystem`, for Ray Train's run folders).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

# SigV4 needs a region; S3-compatible servers accept any, and it is AWS's own default.
DEFAULT_REGION = "us-east-1"
# One attempt's limits (StorageConfig.connect_timeout_s / read_timeout_s): a partitioned server never
# refuses a connection, and botocore's own 60 s defaults would hold each attempt that long.
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None  # None: AWS itself
    key: str | None  # None: the SDK's own chain (environment, profile, instance role)
    secret: str | None
    region: str
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S


def s3_settings(storage_cfg: Any = None) -> S3Settings:
    cfg = as_mapping(storage_cfg)

    def pick(name: str, *env: str) -> str | None:
        value = cfg.get(name)
        for var in env:
            value = value or os.environ.get(var)
        return value or None

    return S3Settings(
        endpoint_url=pick("endpoint_url", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        key=pick("key", "AWS_ACCESS_KEY_ID"),
        secret=pick("secret", "AWS_SECRET_ACCESS_KEY"),
        region=pick("region", "AWS_DEFAULT_REGION", "AWS_REGION") or DEFAULT_REGION,
        connect_timeout_s=float(cfg.get("connect_timeout_s") or DEFAULT_CONNECT_TIMEOUT_S),
        read_timeout_s=float(cfg.get("read_timeout_s") or DEFAULT_READ_TIMEOUT_S),
    )


def as_mapping(storage_cfg: Any) -> Mapping[str, Any]:
    if storage_cfg is None:
        return {}
    if isinstance(storage_cfg, Mapping):
        return storage_cfg
    from omegaconf import DictConfig, OmegaConf

    if isinstance(storage_cfg, DictConfig):
        return OmegaConf.to_container(storage_cfg, resolve=True)  # type: ignore[return-value]
    return vars(storage_cfg)
