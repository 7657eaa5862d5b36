"""Transient storage errors are retried (and counted) without losing samples; permanent ones are not.

Faults come from a small HTTP proxy on 127.0.0.1 in front of the real SeaweedFS server (tests/s3_proxy.py):
it answers chosen object GETs with 503 SlowDown or drops the connection, and forwards the rest."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from crossnet_dist.data import build_train_loader
from crossnet_dist.storage import RetryPolicy, StorageUnavailableError, call_with_retries, is_transient
from tests.s3_proxy import FaultProxy
from tests.test_data_stream import SIZE, data_cfg, epoch_pairs, write_layout

pytestmark = pytest.mark.timeout(60)

@pytest.fixture(scope="module")
def retry_set(s3_server):
    url = "s3://crossnet-test/retry-set"
    write_layout(url, s3_server.storage_options(), {"trainA": 10, "trainB": 10})
    return url


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_transient_errors_are_retried_without_losing_samples(retry_set, s3_server, s3_storage, mode):
    reference = epoch_pairs(build_train_loader(data_cfg(retry_set, s3_storage, batch_size=4), image_size=SIZE, seed=2), 0)
    with FaultProxy(s3_server.endpoint_url, faults=6, modes=(mode,)) as proxy:
        storage = {**s3_storage, "endpoint_url": proxy.endpoint_url, "retries": 4}
        workers = 2 if mode == "503" else 0  # retries are counted in the worker processes too
        loader = build_train_loader(data_cfg(retry_set, storage, batch_size=4, num_workers=workers), image_size=SIZE, seed=2)
        pairs = epoch_pairs(loader, 0)
    assert proxy.injected == 6
    assert pairs == reference  # same samples, same order: nothing lost to the faults
    assert loader.stats.images_skipped == 0
    if mode == "503":
        assert loader.stats.retries == 6
    else:  # aiohttp itself re-sends a request whose kept-alive connection was dropped
        assert loader.stats.retries <= 6


def test_a_storage_outage_outlasting_the_retries_fails_naming_the_url(retry_set, s3_server, s3_storage):
    with FaultProxy(s3_server.endpoint_url, faults=None, modes=("503",)) as proxy:
        storage = {**s3_storage, "endpoint_url": proxy.endpoint_url, "retries": 2}
        loader = build_train_loader(data_cfg(retry_set, storage, batch_size=2, read_ahead=4), image_size=SIZE, seed=0)
        with pytest.raises(StorageUnavailableError, match=f"{retry_set}/train[AB]/.*still failing after 2 retries"):
            next(iter(loader))
    assert proxy.injected == 3 * 4  # first try + 2 retries, for each of the batch's 4 objects


def test_classification_of_storage_errors():
    def client_error(status: int, code: str) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    for transient in (client_error(503, "SlowDown"), client_error(500, "InternalError"), ConnectionResetError(),
                      TimeoutError(), EndpointConnectionError(endpoint_url="http://127.0.0.1:1")):
        assert is_transient(transient), transient
    for permanent in (client_error(404, "NoSuchKey"), client_error(403, "AccessDenied"), FileNotFoundError("k"),
                      PermissionError("k"), ValueError("bad")):
        assert not is_transient(permanent), permanent
    translated = FileNotFoundError("s3://b/k")
    translated.__cause__ = client_error(404, "NoSuchKey")
    assert not is_transient(translated)


def test_permanent_errors_are_raised_at_once_and_transient_ones_retried():
    calls = []

    def missing():
        calls.append(1)
        raise FileNotFoundError("s3://bucket/key.png")

    with pytest.raises(FileNotFoundError):
        call_with_retries(missing, RetryPolicy(retries=5, backoff_s=0.0), "s3://bucket/key.png")
    assert len(calls) == 1

    attempts, retried = [], []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionResetError("reset by peer")
        return "ok"

    assert call_with_retries(flaky, RetryPolicy(retries=5, backoff_s=0.0), "s3://b/k", on_retry=retried.append) == "ok"
    assert len(attempts) == 3 and len(retried) == 2
    assert list(RetryPolicy(retries=4, backoff_s=0.5, max_backoff_s=3, jitter=False).delays()) == [0.5, 1.0, 2.0, 3.0]


def test_back_off_has_full_jitter_under_exponential_ceilings():
    policy = RetryPolicy(retries=8, backoff_s=0.5, max_backoff_s=4.0, budget_s=1000)
    runs = [list(policy.delays(random.Random(seed))) for seed in range(50)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delays in runs:
        assert len(delays) == 8 and all(0.0 <= d <= c for d, c in zip(delays, ceilings))
    assert len({tuple(d) for d in runs}) == 50  # workers retrying together do not retry in step
    firsts = sorted(d[0] for d in runs)
    assert firsts[5] < 0.15 and firsts[-5] > 0.35  # spread over [0, 0.5], not clustered at the ceiling


def test_retries_stop_when_their_time_budget_is_spent():
    assert list(RetryPolicy(retries=100, backoff_s=1.0, max_backoff_s=1.0, budget_s=3.5, jitter=False).delays()) == [
        1.0, 1.0, 1.0, 0.5]
    default = RetryPolicy()
    waits = [sum(default.delays(random.Random(seed))) for seed in range(20)]
    assert min(waits) >= 60 and max(waits) <= default.budget_s  # the default outlasts a minute of outage


def test_missing_object_is_skipped_not_retried(s3_prefix, s3_storage):
    from crossnet_dist.data.reader import ImageReader
    from crossnet_dist.data.stats import DataStats

    write_layout(s3_prefix, s3_storage, {"trainA": 1})
    reader = ImageReader(s3_prefix, s3_storage, RetryPolicy(retries=3, backoff_s=0.0))
    stats = DataStats()
    bucket_path = s3_prefix.removeprefix("s3://")
    images = reader.read([f"{bucket_path}/trainA/000.png", f"{bucket_path}/trainA/gone.png"], stats)
    assert list(images) == [f"{bucket_path}/trainA/000.png"]
    assert stats.retries == 0 and stats.images_skipped == 1 and stats.images_read == 1
    assert stats.skipped[0].startswith(f"{s3_prefix}/trainA/gone.png: unreadable (FileNotFoundError")


def unreachable_s3() -> dict:
    """Storage options of an S3 endpoint on a free loopback port nobody listens on (connection refused)."""
    from crossnet_dist.ports import free_port

    return {"endpoint_url": f"http://127.0.0.1:{free_port()}", "key": "k", "secret": "s"}


def test_reads_one_after_another_share_one_outage_budget():
    import time

    from crossnet_dist.storage import fetch_many, open_url

    fs, root = open_url("s3://bucket/set", unreachable_s3())
    policy = RetryPolicy(retries=100, backoff_s=0.05, max_backoff_s=0.2, budget_s=1.5)
    start = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        fetch_many(fs, [f"{root}/trainA/000.png"], policy)
    first = time.monotonic() - start
    start = time.monotonic()
    with pytest.raises(StorageUnavailableError, match="no storage answer in this process for"):
        fetch_many(fs, [f"{root}/trainA/001.png"], policy)  # the next batch: the outage is already over budget
    with pytest.raises(StorageUnavailableError):
        call_with_retries(lambda: fs.info(f"{root}/trainA"), policy, "s3://bucket/set/trainA")
    later = time.monotonic() - start
    assert 1.5 <= first < 3.0 and later < 1.0, (first, later)


def test_an_answer_from_storage_ends_the_outage(s3_prefix, s3_storage):
    from crossnet_dist.storage import fetch_many, open_url
    from crossnet_dist.storage.retry import OUTAGE

    write_layout(s3_prefix, s3_storage, {"trainA": 1})
    fs, root = open_url("s3://bucket/set", unreachable_s3())
    with pytest.raises(StorageUnavailableError):
        fetch_many(fs, [f"{root}/trainA/000.png"], RetryPolicy(retries=2, backoff_s=0.01))
    assert OUTAGE.failing_for() > 0
    fs, root = open_url(s3_prefix, s3_storage)
    assert fetch_many(fs, [f"{root}/trainA/000.png", f"{root}/trainA/gone.png"], RetryPolicy())
    assert OUTAGE.failing_for() == 0


def test_failures_after_a_quiet_spell_start_a_new_outage():
    from crossnet_dist.storage.retry import OutageClock

    now = [100.0]
    clock = OutageClock(gap_s=60.0, now=lambda: now[0])
    assert clock.failed() == 0.0
    for t in (150.0, 200.0, 250.0):  # failures 50 s apart: one outage, growing
        now[0] = t
        assert clock.failed() == t - 100.0
    now[0] = 400.0  # 150 s without a failure: a new outage
    assert clock.failed() == 0.0
    now[0] = 410.0
    clock.answered()
    assert clock.failing_for() == 0.0 and clock.failed() == 0.0


def test_a_silent_server_gives_up_within_the_budget_plus_one_attempt():
    """A server that accepts connections and never answers (a hung or partitioned host): each attempt
    ends at data.storage.read_timeout_s, and the whole read within retry_budget_s + one attempt."""
    import socket
    import time

    from crossnet_dist.storage import fetch_many, open_url

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # the kernel completes handshakes; nobody ever reads or answers
        storage = {"endpoint_url": f"http://127.0.0.1:{silent.getsockname()[1]}", "key": "k", "secret": "s",
                   "connect_timeout_s": 0.5, "read_timeout_s": 0.5}
        fs, root = open_url("s3://bucket/set", storage)
        start = time.monotonic()
        with pytest.raises(StorageUnavailableError):
            fetch_many(fs, [f"{root}/trainA/000.png"], RetryPolicy(retries=100, backoff_s=0.05, budget_s=1.0))
        took = time.monotonic() - start
    assert 1.0 <= took < 1.0 + 0.5 + 0.4, took  # budget + one attempt, with slack for a loaded machine
