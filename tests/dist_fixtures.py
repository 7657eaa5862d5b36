"""In-memory data for the distributed tests: a rank's shard of tiny_batches, resumable like the
streaming dataset (`dataset.set_epoch(epoch, start_index)`). Named by `dist.loader` as
`tests.dist_fixtures:memory_loader`, so it also works inside `ray job submit` (working_dir)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4)
def _batches(count: int, batch_size: int, size: int):
    from tests.helpers import tiny_batches

    return tiny_batches(count, batch_size=batch_size, size=size)


class MemoryShard:
    """Batches i with i % world_size == rank of a fixed list; set_epoch skips `start_index` samples."""

    def __init__(self, batches, rank: int, world_size: int):
        self.batches = batches[rank::world_size]
        self.start = 0
        self.dataset = self
        self.epoch = 0

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        self.epoch = epoch
        self.start = start_index // self.batches[0]["a"].shape[0]

    def __iter__(self):
        for batch in self.batches[self.start:]:
            yield batch

    def __len__(self):
        return len(self.batches)


def memory_loader(data_cfg, image_size: int, seed: int, rank: int = 0, world_size: int = 1, pin_memory: bool = False,
                  n_batches: int = 4):
    """`n_batches` batches of `data.batch_size` crops per epoch, split over the ranks (CPU tests: not pinned)."""
    return MemoryShard(_batches(n_batches, data_cfg.batch_size, image_size), rank, world_size)


class ShardKilledAtStep(MemoryShard):
    """Fault injection: rank `rank_to_kill` kills its own process (SIGKILL, as a lost node would) when
    asked for the batch of step `step` (one batch per step), if this loader began the run at its
    first batch. A group restarted from a checkpoint resumes mid-run, so it runs on."""

    def __init__(self, batches, rank: int, world_size: int, rank_to_kill: int, step: int):
        super().__init__(batches, rank, world_size)
        self.armed = rank == rank_to_kill
        self.kill_at = step
        self.served = 0
        self.began = None

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        super().set_epoch(epoch, start_index)
        if self.began is None:
            self.began = (epoch, start_index)

    def __iter__(self):
        for batch in super().__iter__():
            self.served += 1
            if self.armed and self.began == (0, 0) and self.served == self.kill_at:
                import signal

                os.kill(os.getpid(), signal.SIGKILL)
            yield batch


def loader_killing_rank1_at_step4(data_cfg, image_size: int, seed: int, rank: int = 0, world_size: int = 1,
                                  pin_memory: bool = False):
    """`memory_loader`'s shard, whose rank 1 dies fetching the batch of step 4 (`ShardKilledAtStep`)."""
    return ShardKilledAtStep(_batches(4, data_cfg.batch_size, image_size), rank, world_size, rank_to_kill=1, step=4)


# ---- environment and clusters for the distributed tests ----------------------------------------

import os  # noqa: E402

LOCAL_ENV = {
    "DS_ACCELERATOR": "cpu",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keeps Ray on 127.0.0.1 (NOTES-stack.md)
    "RAY_AUTH_MODE": "disabled",  # local tests only; keep auth on for real clusters
    "RAY_DEDUP_LOGS": "1",
    "GLOO_SOCKET_IFNAME": "lo",
    # the Train controller registers a reported checkpoint when it next polls the workers (every 2 s
    # by default): a failure sooner after the report restarts from the checkpoint before it
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
}


def use_local_env() -> None:
    for key, value in LOCAL_ENV.items():
        os.environ[key] = value


def dist_overrides(storage, *extra: str) -> list[str]:
    """A tiny 2-worker run on in-memory batches: 4 batches of 4 crops per epoch (2 per rank)."""
    return [
        "train.progress=false", "train.log_every=1", f"dist.storage_path={storage}",
        "dist.loader=tests.dist_fixtures:memory_loader", "dist.num_workers=2", "dist.cpus_per_worker=1",
        "dist.zero3_persistence_threshold=0", "dist.checkpoint_every=2", *extra,
    ]


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host.startswith("127.") or host in ("::1", "localhost") or host.startswith("::ffff:127.")


def _own_sockets(*args: str) -> list[list[str]]:
    """ss rows of sockets that belong to this user's processes (ss names only those)."""
    import subprocess

    out = subprocess.run(["ss", "-tnpH", *args], capture_output=True, text=True).stdout.splitlines()
    return [line.split() for line in out if "users:" in line]


def off_loopback_sockets() -> list[str]:
    """Our sockets that reach beyond 127.0.0.1: connections with a non-loopback end, and listeners
    on a non-loopback address. Allowed: the wildcard listener of torch.distributed's TCPStore in a
    Ray Train worker process (the process-group rendezvous; torch has no bind-address option for it, and its
    clients connect to MASTER_ADDR=127.0.0.1)."""
    bad = []
    for row in _own_sockets("state", "established"):
        local, peer = row[2], row[3]
        if not (_is_loopback(local) and _is_loopback(peer)):
            bad.append(" ".join(row))
    for row in _own_sockets("-l"):
        local = row[3]
        if _is_loopback(local):
            continue
        wildcard = local.rsplit(":", 1)[0] in ("*", "0.0.0.0", "[::]")
        if wildcard and '(("ray::' in " ".join(row[5:]):  # a Ray worker process (named ray::<task>)
            continue
        bad.append(" ".join(row))
    return bad


