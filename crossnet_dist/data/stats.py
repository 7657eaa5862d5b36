"""Counters of the data pipeline.

DataLoader workers are separate processes, so each batch carries the counts of the work
that produced it (`batch["stats"]`, a DataStats delta); the loader (StreamingLoader) adds
them up in the training process, into `loader.stats`. The trainers log them as data/* metrics;
the distributed one also exports them to Prometheus (ray_crossnet_data_*, distributed/telemetry.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

MAX_LISTED_SKIPS = 20  # skipped objects listed by name in a DataStats; the count has them all


@dataclass
class DataStats:
    images_read: int = 0
    images_skipped: int = 0
    retries: int = 0  # reads repeated after a transient storage error
    bytes_read: int = 0
    skipped: list[str] = field(default_factory=list)  # "URL: reason", the first MAX_LISTED_SKIPS

    def add(self, other: "DataStats") -> "DataStats":
        self.images_read += other.images_read
        self.images_skipped += other.images_skipped
        self.retries += other.retries
        self.bytes_read += other.bytes_read
        room = MAX_LISTED_SKIPS - len(self.skipped)
        if room > 0:
            self.skipped.extend(other.skipped[:room])
        return self

    def note_skip(self, url: str, reason: str) -> None:
        self.images_skipped += 1
        if len(self.skipped) < MAX_LISTED_SKIPS:
            self.skipped.append(f"{url}: {reason}")

    def take(self) -> "DataStats":
        """Returns the counts so far and starts again from zero (the per-batch delta)."""
        taken = DataStats(**{f.name: getattr(self, f.name) for f in fields(self)})
        self.images_read = self.images_skipped = self.retries = self.bytes_read = 0
        self.skipped = []
        return taken

    def as_metrics(self, prefix: str = "data/") -> dict[str, float]:
        return {
            f"{prefix}images_read": float(self.images_read),
            f"{prefix}images_skipped": float(self.images_skipped),
            f"{prefix}storage_retries": float(self.retries),
            f"{prefix}bytes_read": float(self.bytes_read),
        }
