"""Free TCP ports on 127.0.0.1.

A port found free is only free until someone binds it. The ports chosen here lie above Ray's worker
ports (10002-19999 by default) and below the kernel's ephemeral range, which the kernel never hands
out by itself: no outgoing connection and no bind to port 0 (Ray's own components, gloo, a test's
client) can take one between the check here and the server's bind.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
CHOSEN_LOW = 20000  # above Ray's default worker ports


def is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default 32768 where it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports outside the ephemeral range (see the module's docstring)."""
    return free_port_pairs(count, offset=0)


def free_port() -> int:
    return free_ports(1)[0]


def free_port_pairs(count: int, offset: int = 10000) -> list[int]:
    """`count` distinct free ports p outside the ephemeral range, each with p + offset free too (offset
    10000: SeaweedFS's gRPC port convention; 0: single ports)."""
    chosen: list[int] = []
    taken: set[int] = set()
    low, high = CHOSEN_LOW, ephemeral_low() - offset
    if high <= low:
        raise OSError(f"no ports between {CHOSEN_LOW} and the ephemeral range {ephemeral_low()} - {offset}")
    rng = random.Random()  # nosec B311 - picking candidate ports, not security
    for _ in range(2000):
        port = rng.randrange(low, high)
        if {port, port + offset} & taken:
            continue
        if is_free(port) and (not offset or is_free(port + offset)):
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
