"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

# ---- S3 server (data layer) ---------------------------------------------------------------------
# One real SeaweedFS server for the whole session, on random ports of 127.0.0.1, stopped at the end.
# Tests get their own prefix in the shared bucket (`s3_prefix`) so they never see each other's objects.

S3_TEST_BUCKET = "crossnet-test"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    from crossnet_dist.storage import S3Server

    with S3Server(
        tmp_path_factory.mktemp("seaweedfs"), key="crossnet-test-key", secret="crossnet-test-secret",
        buckets=[S3_TEST_BUCKET],
    ) as server:
        yield server


@pytest.fixture
def s3_storage(s3_server) -> dict:
    """StorageConfig values (data.storage.*) reaching the session server."""
    return {**s3_server.storage_options(), "retries": 3, "retry_backoff_s": 0.01}


@pytest.fixture
def s3_prefix(s3_server, request) -> str:
    """A fresh s3:// URL for one test (bucket/test-name/)."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")
    return f"s3://{S3_TEST_BUCKET}/{name}"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for modules of tiny networks: faster, and fair to a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def fresh_storage_outage_clock():
    """A test starts with no storage outage on record: the product runs one job per process, and
    an outage one test provokes must not shorten another test's retries."""
    from crossnet_dist.storage.retry import OUTAGE

    OUTAGE.reset()
    yield
