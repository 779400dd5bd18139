"""Ports for the servers the tests and benchmarks start (scripts/devstack.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from scripts.devstack import free_tcp_port, free_udp_range, server_port_window


def test_server_ports_stay_below_the_ephemeral_range_and_are_never_reused() -> None:
    # Outgoing connections take their local port from the ephemeral range; a server port
    # from there can be taken between the pick and the server's bind.
    low, high = server_port_window()
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert high <= ephemeral_low
    tcp = [free_tcp_port() for _ in range(50)]
    udp = [free_udp_range(60) for _ in range(5)]
    assert all(low <= p < high for p in tcp)
    assert all(low <= p and p + 60 <= high for p in udp)
    assert len(set(tcp)) == len(tcp)
    udp_ports = {p for start in udp for p in range(start, start + 60)}
    assert len(udp_ports) == 5 * 60
    assert not udp_ports.intersection(tcp)


def test_a_port_handed_out_can_be_bound_on_every_address() -> None:
    port = free_tcp_port()
    with socket.socket() as s:
        s.bind(("0.0.0.0", port))  # noqa: S104 - what livekit-server's ICE/TCP listener does
        s.listen()
        assert s.getsockname()[1] == port
