"""One reading of the S3 settings builds both filesystems: the fsspec one and Ray Train's pyarrow one."""

from __future__ import annotations

import pytest

from crossnet_dist.storage.credentials import s3_settings
from crossnet_dist.storage.runs import s3_filesystem
from crossnet_dist.storage.urls import s3_options

AWS_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION", "AWS_REGION")


@pytest.fixture
def bare_env(monkeypatch):
    for name in AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_config_values_win_over_the_environment(bare_env):
    bare_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    bare_env.setenv("AWS_REGION", "eu-west-1")
    settings = s3_settings({"endpoint_url": "http://127.0.0.1:2", "key": "k", "secret": "s"})
    found = (settings.endpoint_url, settings.key, settings.secret, settings.region)
    assert found == ("http://127.0.0.1:2", "k", "s", "eu-west-1")


def test_both_filesystems_get_the_same_endpoint_and_default_region(bare_env):
    cfg = {"endpoint_url": "http://127.0.0.1:8333", "key": "k", "secret": "s"}
    fsspec_options = s3_options(cfg)
    arrow = s3_filesystem(cfg)
    assert fsspec_options["endpoint_url"] == "http://127.0.0.1:8333"
    assert fsspec_options["config_kwargs"]["region_name"] == arrow.region == "us-east-1"
    assert fsspec_options["config_kwargs"]["retries"]["total_max_attempts"] == 1


def test_unset_keys_are_left_to_the_sdk_chain(bare_env):
    assert (s3_settings().key, s3_settings().secret, s3_settings().endpoint_url) == (None, None, None)
    assert s3_options()["key"] is None
