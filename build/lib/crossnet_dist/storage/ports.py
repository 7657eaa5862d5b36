"""Free TCP ports on 127.0.0.1."""

from __future__ import annotations

import random
import socket

LOOPBACK = "127.0.0.1"


def is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def free_port_pairs(count: int, offset: int = 10000, low: int = 20000, high: int = 50000) -> list[int]:
    """`count` distinct ports p, each with p + offset free too (SeaweedFS's gRPC port convention)."""
    chosen: list[int] = []
    taken: set[int] = set()
    rng = random.Random()  # nosec B311 - picking candidate ports, not security
    for _ in range(2000):
        port = rng.randrange(low, high)
        if {port, port + offset} & taken:
            continue
        if is_free(port) and is_free(port + offset):
            chosen.append(port)
            taken.update({port, port + offset})
            if len(chosen) == count:
                return chosen
    raise OSError(f"could not find {count} free port pairs on {LOOPBACK}")


def wait_for_port(port: int, timeout_s: float) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return True
        time.sleep(0.05)
    return False
