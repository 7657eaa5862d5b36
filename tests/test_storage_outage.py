"""Training through a real storage outage: the S3 server (SeaweedFS) is stopped mid-epoch and brought
back on the same port. Within the retry budget the run rides it out; past the budget it checkpoints,
fails with one line naming the URL, and --resume finishes the epoch. Either way every image of the
epoch is trained exactly once, in the order of an undisturbed run."""

from __future__ import annotations

import threading

import pytest

from crossnet_dist.data import build_train_loader
from crossnet_dist.storage import S3Server, StorageUnavailableError
from crossnet_dist.training.loop import Trainer
from tests.helpers import TINY_CONFIG, config_from
from tests.test_data_stream import image_index, write_layout

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("one_torch_thread")]

IMAGES = 24  # per domain; batches of 2: one epoch is 12 steps
OLD_BUDGET_S = 6.2  # the retries before this budget existed: 0.2 s doubled over 5 retries
OUTAGE_S = OLD_BUDGET_S + 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with S3Server(tmp_path_factory.mktemp("outage-s3"), buckets=["outage"]) as s3:
        write_layout("s3://outage/set", s3.storage_options(), {"trainA": IMAGES, "trainB": IMAGES})
        yield s3


def cfg_for(server, tmp_path, *overrides):
    storage = [f"data.storage.{k}={v}" for k, v in server.storage_options().items()]
    return config_from(TINY_CONFIG, tmp_path, "data.root=s3://outage/set", *storage, "data.flip=false",
                       "data.batch_size=2", "data.num_workers=0", "data.read_ahead=1", "optim.n_epochs=1",
                       "optim.n_epochs_decay=0", "train.max_steps=0", "train.checkpoint_every=1000",
                       "train.log_every=4", "train.sample_every=1000", *overrides)


class Recording(Trainer):
    """Records the images of every trained batch; can stop the server after a given step."""

    def __init__(self, cfg, server=None, stop_after: int = 0, outage_s: float | None = None):
        super().__init__(cfg)
        self.trained: list[tuple[list[int], list[int]]] = []
        self.server, self.stop_after, self.outage_s = server, stop_after, outage_s

    def train_batch(self, batches):
        metrics = super().train_batch(batches)
        for b in batches:
            self.trained.append(([image_index(t) for t in b["a"]], [image_index(t) for t in b["b"]]))
        if self.server is not None and self.step == self.stop_after:
            self.server.stop()  # the outage starts with the next read
            if self.outage_s is not None:
                self.restarter = restart_later(self.server, self.outage_s)
        return metrics


class restart_later(threading.Thread):
    """Restarts the server after `delay_s`, then stays alive until `release()`: the server is its child,
    and on Linux a child launched with PDEATHSIG dies with the thread that launched it."""

    def __init__(self, server, delay_s: float):
        super().__init__(daemon=True)
        self.server, self.delay_s, self.released, self.error = server, delay_s, threading.Event(), None
        self.start()

    def run(self):
        if not self.released.wait(self.delay_s):
            try:
                self.server.restart()
            except Exception as err:  # noqa: BLE001 - reported by the test
                self.error = err
        self.released.wait()

    def release(self):
        self.released.set()


def fit(trainer: Trainer, cfg):
    loader = build_train_loader(cfg.data, image_size=cfg.model.image_size, seed=cfg.train.seed)
    return trainer.fit(loader), loader


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory):
    cfg = cfg_for(server, tmp_path_factory.mktemp("reference"))
    trainer = Recording(cfg)
    fit(trainer, cfg)
    assert trainer.step == IMAGES // 2
    return trainer.trained


def test_an_outage_longer_than_the_old_retries_is_ridden_out(server, reference, tmp_path):
    cfg = cfg_for(server, tmp_path, "data.storage.retry_budget_s=60")
    trainer = Recording(cfg, server, stop_after=3, outage_s=OUTAGE_S)
    try:
        last, loader = fit(trainer, cfg)
        assert trainer.restarter.error is None and server.is_running()
    finally:
        trainer.restarter.release()
        trainer.restarter.join()
        server.restart()  # from this thread, for the next test
    assert trainer.trained == reference  # no image lost, none trained twice, the same order
    assert loader.stats.retries > 0 and loader.stats.images_skipped == 0
    assert last["data/storage_retries"] == loader.stats.retries  # in the --local run's metrics too


def test_past_the_budget_the_run_checkpoints_fails_naming_the_url_and_resumes(server, reference, tmp_path):
    cfg = cfg_for(server, tmp_path, "data.storage.retry_budget_s=1")
    first = Recording(cfg, server, stop_after=5)
    with pytest.raises(StorageUnavailableError) as failure:
        fit(first, cfg)
    message = str(failure.value)
    assert "s3://outage/set/train" in message and "still failing after" in message
    stopped_at = first.step  # 5, or later by the batches read ahead before the outage
    assert stopped_at >= 5 and f"step_{stopped_at:08d}.pt holds step {stopped_at}" in message and "--resume" in message
    server.restart()

    second = Recording(cfg)
    assert second.resume() is not None and second.step == stopped_at
    fit(second, cfg)
    assert first.trained + second.trained == reference  # the epoch, every image once


def test_past_the_budget_with_loader_processes_the_error_is_still_one_line(server, tmp_path):
    cfg = cfg_for(server, tmp_path, "data.storage.retry_budget_s=1", "data.num_workers=2")
    first = Recording(cfg, server, stop_after=3)
    try:
        with pytest.raises(StorageUnavailableError) as failure:
            fit(first, cfg)
    finally:
        server.restart()
    message = str(failure.value)
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith("s3://outage/set/train") and "--resume" in message
