"""Keeps a local endpoint on 127.0.0.1: Ray Serve 2.60 replicas bind their inter-deployment gRPC
server to "[::]:0" (every interface) whatever the node address is.

`bind_replica_grpc_to_loopback()` runs first in each replica's constructor (before Serve starts that
server) and, only when the Ray node itself is on 127.0.0.1, makes the server bind 127.0.0.1 instead.
On a real cluster (node IP not loopback) nothing changes: other nodes must reach the replicas.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
_ANY_INTERFACE = "[::]:"


def bind_replica_grpc_to_loopback() -> bool:
    """Returns True when the replica's gRPC server will bind 127.0.0.1."""
    try:
        import ray
        from ray.serve._private import replica as replica_module

        if ray.util.get_node_ip_address() != LOOPBACK:
            return False
        original = replica_module.add_port_to_grpc_server
    except (ImportError, AttributeError) as err:  # another Ray version: nothing to adjust
        log.warning("cannot pin the replica gRPC server to %s: %s", LOOPBACK, err)
        return False
    if getattr(original, "crossnet_loopback", False):
        return True

    def add_port_on_loopback(server, address: str):
        if address.startswith(_ANY_INTERFACE):
            address = f"{LOOPBACK}:{address[len(_ANY_INTERFACE):]}"
        return original(server, address)

    add_port_on_loopback.crossnet_loopback = True  # type: ignore[attr-defined]
    replica_module.add_port_to_grpc_server = add_port_on_loopback
    return True
