"""The real ``focus-assist run`` under a pretend systemd: our own NOTIFY_SOCKET and watchdog.

Each test binds an AF_UNIX datagram socket, starts the console script with
``NOTIFY_SOCKET``/``WATCHDOG_USEC`` pointing at it (as systemd would for ``Type=notify``
with ``WatchdogSec=``), and checks what arrives: READY, a steady stream of watchdog pings,
STATUS lines, a clean exit 0 on SIGTERM, and silence when the camera hangs, which is
what makes systemd restart a hung service.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# WATCHDOG_USEC we hand out: pings due every 1 s. Long enough that a loaded CI box's
# scheduling jitter (a few hundred ms) is far from the limit, short enough to test quickly.
WATCHDOG_S = 2.0
WINDOW_S = 4.0            # how long the pings are watched
START_TIMEOUT_S = 90.0    # cold imports on a busy 2-core CI box


def focus_assist_cmd() -> list[str]:
    script = Path(sys.executable).with_name("focus-assist")
    if script.exists():
        return [str(script)]
    found = shutil.which("focus-assist")
    return [found] if found else [sys.executable, "-m", "device.cli"]


class Listener:
    """A bound notify socket that timestamps every datagram it receives."""

    def __init__(self, tmp_path: Path, abstract: bool = True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            tag = f"focus-assist-it-{uuid.uuid4().hex}"
            self.sock.bind("\0" + tag)
            self.name = "@" + tag
        else:
            self.name = str(tmp_path / "notify.sock")
            self.sock.bind(self.name)
        self.messages: list[tuple[float, str]] = []
        self.cursor = 0

    def poll(self, timeout: float) -> list[tuple[float, str]]:
        """Collect for ``timeout`` seconds; return what arrived meanwhile."""
        end = time.monotonic() + timeout
        got = []
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, BlockingIOError):
                break
            for field in data.decode().split("\n"):
                item = (time.monotonic(), field)
                got.append(item)
                self.messages.append(item)
        return got

    def wait_for(self, field: str, timeout: float, proc: subprocess.Popen) -> float:
        """Time of the next ``field`` after the one the previous wait_for matched."""
        end = time.monotonic() + timeout
        while True:
            for i in range(self.cursor, len(self.messages)):
                t, f = self.messages[i]
                if f == field:
                    self.cursor = i + 1
                    return t
            if time.monotonic() >= end or proc.poll() is not None:
                break
            self.poll(0.2)
        out, err = proc.communicate(timeout=5) if proc.poll() is not None else ("", "")
        raise AssertionError(f"no {field} within {timeout} s (exit {proc.poll()}):\n{err}")

    def fields(self, prefix: str) -> list[tuple[float, str]]:
        return [(t, f) for t, f in self.messages if f.startswith(prefix)]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.toml"
    # fps paces the simulated camera like a real one instead of spinning both CPU cores.
    # No CNNs: this is about the service contract, and must not depend on trained models.
    path.write_text("[sim]\nfps = 25.0\nwidth = 320\nheight = 240\n"
                    "[models]\nenable_focus = false\nenable_defects = false\n"
                    "[service]\nmax_source_failures = 3\nretry_backoff_s = 0.05\n"
                    "retry_backoff_max_s = 0.1\nstatus_interval_s = 0.5\n")
    return path


def start(listener: Listener, source: str, config: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, NOTIFY_SOCKET=listener.name,
               WATCHDOG_USEC=str(int(WATCHDOG_S * 1e6)), INVOCATION_ID=uuid.uuid4().hex)
    env.pop("WATCHDOG_PID", None)
    env.pop("JOURNAL_STREAM", None)
    return subprocess.Popen([*focus_assist_cmd(), "run", "--source", source, "--config", str(config),
                             *extra],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> tuple[float, int, str]:
    """SIGTERM; (seconds to exit, exit status, stderr)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return float("inf"), proc.returncode, err
    return time.monotonic() - t0, proc.returncode, err


@pytest.fixture
def cleanup():
    procs, listeners = [], []
    yield procs, listeners
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.communicate()
    for s in listeners:
        s.close()


def test_ready_watchdog_status_and_sigterm(tmp_path, config, cleanup):
    procs, listeners = cleanup
    lis = Listener(tmp_path, abstract=True)
    listeners.append(lis)
    proc = start(lis, "sim", config)
    procs.append(proc)

    t_ready = lis.wait_for("READY=1", START_TIMEOUT_S, proc)
    lis.poll(WINDOW_S)
    assert proc.poll() is None, "exited while it should be running"

    pings = [t for t, _ in lis.fields("WATCHDOG=1") if t >= t_ready]
    assert len(pings) >= 3, f"only {len(pings)} watchdog pings in {WINDOW_S} s"
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    # systemd would kill us after one whole interval without a ping.
    assert max(gaps) < WATCHDOG_S, f"watchdog gap {max(gaps):.2f} s"
    # ... and the pings are rate-limited to about two per interval, not one per frame.
    assert len(pings) <= WINDOW_S / (WATCHDOG_S / 2) + 2

    statuses = [f for _, f in lis.fields("STATUS=")]
    assert any(" fps, focus " in s and "faults 0" in s for s in statuses), statuses

    took, rc, err = stop(proc)
    assert rc == 0, err
    assert took <= 2.0, f"SIGTERM took {took:.2f} s"
    lis.poll(0.2)
    assert any(f == "STOPPING=1" for _, f in lis.messages)
    # Under systemd (INVOCATION_ID) every log line carries a priority and no timestamp.
    lines = [ln for ln in err.splitlines() if ln]
    assert lines and all(ln[:1] == "<" and ln[2:3] == ">" for ln in lines), err


def test_hung_camera_stops_the_pings(tmp_path, config, cleanup):
    procs, listeners = cleanup
    lis = Listener(tmp_path, abstract=True)
    listeners.append(lis)
    proc = start(lis, "sim:hang_after=75", config)  # about 3 s of frames at 25 fps
    procs.append(proc)
    lis.wait_for("READY=1", START_TIMEOUT_S, proc)

    # Wait for the pings to start, then for a silence of two whole intervals.
    deadline = time.monotonic() + 30
    silent_since = None
    while time.monotonic() < deadline:
        got = [f for _, f in lis.poll(0.25) if f == "WATCHDOG=1"]
        if got:
            silent_since = None
            continue
        if lis.fields("WATCHDOG=1"):
            silent_since = silent_since or time.monotonic()
            if time.monotonic() - silent_since >= 2 * WATCHDOG_S:
                break
    assert lis.fields("WATCHDOG=1"), "no ping before the hang"
    assert silent_since is not None and time.monotonic() - silent_since >= 2 * WATCHDOG_S, \
        "pings kept coming although the camera hangs"
    assert proc.poll() is None, "a hang should leave the process to the watchdog, not exit it"

    # Even with the camera stuck inside read(), SIGTERM ends the process cleanly.
    took, rc, err = stop(proc)
    assert rc == 0, err
    assert took <= 2.0, f"SIGTERM with a hung camera took {took:.2f} s"


def test_failing_camera_reports_faults_then_exits_nonzero(tmp_path, config, cleanup):
    procs, listeners = cleanup
    lis = Listener(tmp_path, abstract=False)  # the path form of NOTIFY_SOCKET, this time
    listeners.append(lis)
    proc = start(lis, "sim:fail_after=20", config)
    procs.append(proc)
    lis.wait_for("READY=1", START_TIMEOUT_S, proc)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("a camera that keeps failing must end the process")
    lis.poll(0.2)
    # Non-zero so that Restart=on-failure applies; a usage error (2) would not be a fault.
    assert proc.returncode not in (0, 2), (proc.returncode, err)
    statuses = [f for _, f in lis.fields("STATUS=")]
    assert any("faults 3" in s for s in statuses), statuses
    assert err.strip(), "the reason must be logged"


def test_runs_without_systemd(tmp_path, config):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "INVOCATION_ID", "JOURNAL_STREAM")}
    cp = subprocess.run([*focus_assist_cmd(), "run", "--source", "sim", "--config", str(config),
                         "--frames", "10"], env=env, capture_output=True, text=True, timeout=120,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, cp.stderr


def test_sighup_reload_reports_reloading_then_ready(tmp_path, config, cleanup):
    """systemctl reload: RELOADING=1 ... READY=1, and a bad new config keeps the old one."""
    procs, listeners = cleanup
    lis = Listener(tmp_path, abstract=True)
    listeners.append(lis)
    proc = start(lis, "sim", config)
    procs.append(proc)
    lis.wait_for("READY=1", START_TIMEOUT_S, proc)
    lis.poll(0.5)

    good = config.read_text()
    config.write_text(good + "[log]\nlevel = \"debug\"\n")
    proc.send_signal(signal.SIGHUP)
    t_reloading = lis.wait_for("RELOADING=1", 10, proc)
    t_ready = lis.wait_for("READY=1", 10, proc)
    assert t_ready >= t_reloading

    config.write_text(good + "[log]\nlevl = 'typo'\n")
    proc.send_signal(signal.SIGHUP)
    lis.wait_for("RELOADING=1", 10, proc)
    lis.wait_for("READY=1", 10, proc)
    lis.poll(1.5)
    assert proc.poll() is None, "a bad config on SIGHUP must not end the service"
    assert [f for t, f in lis.fields("WATCHDOG=1") if t > t_ready], "frames stopped after reload"

    took, rc, err = stop(proc)
    assert rc == 0, err
    assert "levl" in err and "keeping the old config" in err
    # [log] level = "debug" from the reloaded config took effect (no --log-level given).
    assert any(line.startswith("<7>") for line in err.splitlines()), err
