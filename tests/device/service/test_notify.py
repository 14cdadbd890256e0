"""sd_notify against real AF_UNIX datagram sockets that the test binds (path and @abstract)."""
from __future__ import annotations

import os
import socket
import uuid

import pytest

from device.service.notify import Notifier, ServiceNotifierSink, Watchdog
from tests.device.results import result, verdict


def _recv_all(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path):
    """(socket, NOTIFY_SOCKET value) for a bound datagram socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        addr = str(tmp_path / "notify.sock")
        sock.bind(addr)
        name = addr
    else:
        tag = f"focus-assist-test-{uuid.uuid4().hex}"
        sock.bind("\0" + tag)
        name = "@" + tag
    yield sock, name
    sock.close()


class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_disabled_without_notify_socket():
    n = Notifier.from_env({})
    assert not n.enabled
    assert n.watchdog_interval is None
    assert n.watchdog() is None
    assert n.ready() is False and n.status("x") is False and n.ping() is False
    assert n.sent == 0 and n.errors == 0


def test_ready_status_stopping_arrive(listener):
    sock, name = listener
    n = Notifier.from_env({"NOTIFY_SOCKET": name})
    assert n.enabled
    assert n.ready(status="loaded")
    assert n.status("12.0 fps")
    assert n.reloading()
    assert n.stopping()
    assert n.stopping() is False  # once only
    n.close()
    msgs = _recv_all(sock)
    assert msgs == ["READY=1\nSTATUS=loaded", "STATUS=12.0 fps", "RELOADING=1", "STOPPING=1"]
    assert n.sent == 4


def test_status_cannot_inject_fields(listener):
    sock, name = listener
    n = Notifier(name)
    n.status("line one\nREADY=1")
    assert _recv_all(sock) == ["STATUS=line one READY=1"]


def test_watchdog_env_parsing():
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "4000000"}
    assert Notifier.from_env(env).watchdog_interval == 4.0
    # Armed for another process: not ours to feed.
    assert Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_interval is None
    assert Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 4.0
    assert Notifier.from_env({**env, "WATCHDOG_USEC": "soon"}).watchdog_interval is None
    assert Notifier.from_env({**env, "WATCHDOG_USEC": "0"}).watchdog_interval is None
    # A watchdog without a socket to ping is no watchdog.
    assert Notifier.from_env({"WATCHDOG_USEC": "4000000"}).watchdog_interval is None


def test_bad_socket_name_is_disabled():
    assert not Notifier("relative/path").enabled
    assert not Notifier("@").enabled


def test_watchdog_pings_at_half_interval(listener):
    sock, name = listener
    clock = FakeClock()
    wd = Notifier(name, watchdog_usec=2_000_000).watchdog(clock=clock)
    assert isinstance(wd, Watchdog) and wd.period_s == 1.0
    sent = []
    for step in range(41):  # 4 s in 0.1 s steps
        clock.t = 100.0 + step * 0.1
        sent.append(wd.maybe_ping())
    # t = 100.0, 101.0, 102.0, 103.0, 104.0 (float steps may land a hair early: allow 4..5)
    assert 4 <= sum(sent) <= 5
    assert sent[0] is True
    msgs = _recv_all(sock)
    assert msgs == ["WATCHDOG=1"] * sum(sent)


def test_send_failure_is_counted_not_raised(tmp_path):
    n = Notifier(str(tmp_path / "nobody-listens.sock"))
    assert n.enabled
    assert n.ping() is False
    assert n.status("x") is False
    assert n.errors == 2 and n.sent == 0


def test_sink_pings_and_rate_limits_status(listener):
    sock, name = listener
    clock = FakeClock(0.0)
    n = Notifier(name, watchdog_usec=1_000_000)
    sink = ServiceNotifierSink(n, clock=clock)
    # 3 s at 30 fps
    for i in range(91):
        clock.t = i / 30
        sink.on_frame(None, result(0.5 + i / 1000))
    msgs = _recv_all(sock)
    statuses = [m for m in msgs if m.startswith("STATUS=")]
    pings = [m for m in msgs if m == "WATCHDOG=1"]
    assert 2 <= len(statuses) <= 3, msgs          # about once per second, not per frame
    assert 6 <= len(pings) <= 7, msgs              # every 0.5 s
    assert statuses[-1].startswith("STATUS=30.0 fps, focus 0.5")
    assert "faults 0" in statuses[-1]
    st = sink.stats()
    assert sink.frames == 91 and sink.faults == 0
    assert st["notify_watchdog_pings"] == len(pings) and st["notify_sent"] == len(msgs)
    assert st["notify_status"] == statuses[-1][len("STATUS="):]
    assert not {"frames", "fps", "faults"} & set(st)  # the loop's own keys


def test_sink_reports_faults_at_once_without_pinging(listener):
    sock, name = listener
    clock = FakeClock(0.0)
    n = Notifier(name, watchdog_usec=1_000_000)
    sink = ServiceNotifierSink(n, clock=clock)
    sink.on_frame(None, result(1.0))
    _recv_all(sock)
    for k in range(3):
        clock.t = 5.0 + k  # long past the ping period: a fault must still not ping
        sink.on_fault("camera timed out")
    msgs = _recv_all(sock)
    assert "WATCHDOG=1" not in msgs
    assert msgs[-1] == "STATUS=0.0 fps, focus 1, faults 3 (last: camera timed out)"
    assert sink.faults == 3


def test_sink_status_and_close(listener):
    sock, name = listener
    clock = FakeClock(0.0)
    sink = ServiceNotifierSink(Notifier(name), clock=clock, status_interval_s=0.5)
    for i in range(3):
        clock.t = i * 0.5
        sink.on_frame(None, result(0.91))
    sink.close()
    sink.close()
    msgs = _recv_all(sock)
    assert "WATCHDOG=1" not in msgs  # no watchdog armed, no pings
    assert any(m.startswith("STATUS=") and "focus 0.91" in m for m in msgs)
    assert msgs.count("STOPPING=1") == 1
    assert msgs[-1] == "STOPPING=1"


def test_sink_without_systemd_is_silent():
    sink = ServiceNotifierSink(Notifier.from_env({}))
    for _ in range(10):
        sink.on_frame(None, result(0.3))
    sink.on_fault("x")
    sink.close()
    assert sink.stats()["notify_sent"] == 0 and sink.stats()["notify_errors"] == 0


def test_full_queue_drops_instead_of_blocking(listener):
    """If systemd stops reading, sends fail fast (EAGAIN) rather than stall the frame loop."""
    import time

    sock, name = listener
    n = Notifier(name)
    t0 = time.monotonic()
    results = [n.ping() for _ in range(5000)]
    assert time.monotonic() - t0 < 5.0
    assert results[0] is True and not all(results)   # the queue filled up at some point
    assert n.errors == results.count(False) and n.sent == results.count(True)


def test_status_shows_the_cnn_verdict(listener):
    sock, name = listener
    clock = FakeClock(0.0)
    sink = ServiceNotifierSink(Notifier(name), clock=clock)
    for i in range(31):
        clock.t = i / 30
        sink.on_frame(None, result(57.6, cnn=verdict(0.912, label="sharp")))
    assert _recv_all(sock)[-1] == "STATUS=30.0 fps, focus 57.6, sharp (p_sharp 0.91), faults 0"
