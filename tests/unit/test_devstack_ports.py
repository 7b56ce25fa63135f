"""Local servers' ports (salespulse.devstack.servers.free_port)."""

from __future__ import annotations

import socket

from salespulse.devstack import servers


class FakeSocket:
    """A bound socket's context manager, without the socket."""

    port = 0

    def __enter__(self) -> "FakeSocket":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def bind(self, address) -> None:
        pass

    def getsockname(self) -> tuple[str, int]:
        return "127.0.0.1", self.port


def reused_ports(*ports: int) -> type:
    """A socket class the system gives `ports` in turn."""
    offered = list(ports)

    class ReusedPorts(FakeSocket):
        def __init__(self, *args) -> None:
            self.port = offered.pop(0)
    return ReusedPorts



def test_a_port_is_never_handed_out_twice_even_when_the_system_offers_it_again(monkeypatch):
    monkeypatch.setattr(servers, "_HANDED_OUT", set())
    monkeypatch.setattr(servers.socket, "socket", reused_ports(50001, 50001, 50002))
    assert [servers.free_port(), servers.free_port()] == [50001, 50002]


def test_ports_handed_out_are_free():
    port = servers.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing holds it
