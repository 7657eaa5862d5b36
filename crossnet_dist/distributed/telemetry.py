"""Rank 0's metric sinks besides Ray reporting: TensorBoard event files and Prometheus.

Prometheus metrics go through `ray.util.metrics`, which Ray's per-node metrics agent exposes on
its Prometheus endpoint (scraped via the file `ray start` writes for Prometheus service discovery),
so nothing here opens a port. TensorBoard events are written to a local folder and copied to
`<run>/tb/` in storage at every checkpoint and at the end.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_GAUGES = {
    "perf/images_per_s": ("crossnet_train_images_per_second", "Training throughput over all workers"),
    "perf/step_time_s": ("crossnet_train_step_seconds", "Wall time per training step"),
    "perf/data_wait_s": ("crossnet_train_data_wait_seconds", "Time per step spent waiting for data"),
    "progress/step": ("crossnet_train_step", "Training steps done"),
    "fault/lost_steps": ("crossnet_train_lost_steps", "Steps redone after worker failures"),
    "fault/restarts": ("crossnet_train_restarts", "Worker-group restarts after failures"),
    # the data loaders' counters, summed over the workers since this worker group started
    "data/images_read": ("crossnet_data_images_read", "Images read and decoded by the training data loaders"),
    "data/images_skipped": ("crossnet_data_images_skipped", "Corrupt, missing or unreadable images skipped"),
    "data/storage_retries": ("crossnet_data_storage_retries", "Object reads repeated after a transient storage error"),
}


class Telemetry:
    def __init__(self, run_name: str, storage, enabled: bool):
        self.enabled = enabled
        self.run_name = run_name
        self.storage = storage  # ray StorageContext: storage_filesystem, experiment_fs_path
        self._writer = None
        self._tb_dir = Path(tempfile.mkdtemp(prefix="crossnet-tb-")) if enabled else None
        self._gauges: dict[str, object] = {}
        self._loss = None
        if enabled:
            try:
                from ray.util.metrics import Gauge

                tags = ("run",)
                self._loss = Gauge("crossnet_train_loss", "Loss terms (mean over workers)", tag_keys=("run", "term"))
                self._gauges = {k: Gauge(name, desc, tag_keys=tags) for k, (name, desc) in _GAUGES.items()}
            except Exception as err:  # metrics are best effort; training goes on
                log.warning("Prometheus metrics disabled: %s", err)
            # made before training: importing TensorBoard (~0.15 s) inside the first log window
            # stalled training there
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self._tb_dir))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)
            try:
                if key.startswith("loss/") and self._loss is not None:
                    self._loss.set(value, tags={"run": self.run_name, "term": key[5:]})
                elif key in self._gauges:
                    self._gauges[key].set(value, tags={"run": self.run_name})
            except Exception as err:  # pragma: no cover - a metrics agent hiccup must not stop training
                log.debug("metric %s not exported: %s", key, err)

    def sync(self) -> None:
        """Copies the event files to <run>/tb/ in storage."""
        if not self.enabled:
            return
        from crossnet_dist.storage.runs import upload_dir

        self._writer.flush()
        try:
            upload_dir(self._tb_dir, self.storage.storage_filesystem, f"{self.storage.experiment_fs_path}/tb")
        except Exception as err:
            log.warning("could not copy TensorBoard logs to storage: %s", err)

    def close(self) -> None:
        import shutil

        self.sync()
        if self._writer is not None:
            self._writer.close()
        if self._tb_dir is not None:
            shutil.rmtree(self._tb_dir, ignore_errors=True)
