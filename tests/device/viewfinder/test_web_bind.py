"""The web server binds without a reverse DNS lookup (slow on a Pi with no DNS)."""
import socket

import pytest

from device.viewfinder.web.handler import server_for


def test_binding_never_looks_the_host_name_up(monkeypatch):
    def no_dns(*_):
        raise AssertionError("socket.getfqdn called")

    monkeypatch.setattr(socket, "getfqdn", no_dns)
    server = server_for("127.0.0.1", 0)
    try:
        assert server.server_name == "127.0.0.1"
        assert server.server_port == server.server_address[1] > 0
    finally:
        server.server_close()


def test_a_taken_port_still_fails_to_bind():
    first = server_for("127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            server_for("127.0.0.1", first.server_address[1]).server_close()
    finally:
        first.server_close()
