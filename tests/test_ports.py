"""Ports handed to servers (Ray's head, SeaweedFS, Serve) lie where no bind to port 0 can take them."""

import socket

from crossnet_dist.ports import CHOSEN_LOW, LOOPBACK, ephemeral_low, free_port_pairs, free_ports


def test_free_ports_are_distinct_bindable_and_outside_the_ephemeral_range():
    ports = free_ports(6)
    assert len(set(ports)) == 6
    assert all(CHOSEN_LOW <= p < ephemeral_low() for p in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, port))


def test_port_zero_is_never_one_of_them():
    """What the kernel hands to a bind to port 0 (Ray's own components, gloo) lies in the ephemeral range."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        assert sock.getsockname()[1] >= ephemeral_low()


def test_port_pairs_keep_both_ports_below_the_ephemeral_range():
    pairs = free_port_pairs(4, offset=1000)
    assert all(p + 1000 < ephemeral_low() for p in pairs) and len(set(pairs)) == 4
