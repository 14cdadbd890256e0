"""SIGTERM stops the real ``focus-assist run`` in time, with its state saved (hardening
cases F6 and F18).

F18: the network camera stalls with its socket open, so OpenCV's grabber sits inside
``read()`` and ``release()`` would wait for it. F6: the web shutter has filled the capture
queue with large PNGs. Before the fix the first took 3.1-3.3 s (1 s + 2 s of fixed waits,
whatever the machine) and the second 4.2 s to 30 s, with the defect map saved last or
never. Now the live defect map and the motor position are saved first and whatever does
not return within the budget is abandoned. The bound, 2.5 s, is the 2 s promise plus room
for a loaded 2-core box, and still below what the old code could reach on any machine.
"""
from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time

import cv2
import numpy as np
import pytest
from skimage import data

from tests.systemd.test_service_process import START_TIMEOUT_S, Listener, start, stop

pytestmark = pytest.mark.slow

BOUND_S = 2.5


class StallingCamera:
    """MJPEG over HTTP on 127.0.0.1: ``frames`` frames, then silence with the socket open."""

    def __init__(self, frames: int):
        img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        self.jpegs = [cv2.imencode(".jpg", np.roll(img, 7 * i, axis=1))[1].tobytes()
                      for i in range(8)]
        self.frames = frames
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; "
                             b"boundary=fr\r\n\r\n")
                for i in range(self.frames):
                    j = self.jpegs[i % len(self.jpegs)]
                    conn.sendall(b"--fr\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                 % len(j) + j + b"\r\n")
                    time.sleep(0.04)
            except OSError:
                return
            self.stalled.set()
            self.release.wait(120)

    def close(self) -> None:
        self.release.set()
        self.server.close()


def _config(tmp_path, extra: str = "") -> "Path":
    path = tmp_path / "config.toml"
    path.write_text("[models]\nenable_focus = false\nenable_defects = false\n"
                    "[defects]\nlive = true\nsave_interval_s = 600\n"
                    '[motor]\nenabled = true\ndriver = "stepdir"\nstep_pin = 17\ndir_pin = 27\n'
                    "enable_pin = 22\n"
                    f'[service]\nstate_dir = "{tmp_path / "state"}"\nstatus_interval_s = 0.5\n'
                    + extra)
    return path


def _clear_state(state) -> None:
    """Remove what start-up may have written, so only the stop can write it again."""
    for name in ("defects.json", "motor-position.json"):
        (state / name).unlink(missing_ok=True)


def _assert_state_saved(state) -> None:
    defects = json.loads((state / "defects.json").read_text())
    assert defects["frames"] > 0, defects
    motor = json.loads((state / "motor-position.json").read_text())
    assert motor["moving"] is False, motor


@pytest.fixture
def procs():
    started = []
    yield started
    for p, lis in started:
        if p.poll() is None:
            p.kill()
            p.communicate()
        lis.close()


def test_f18_sigterm_with_the_camera_stuck_in_opencv_read(tmp_path, monkeypatch, procs):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    cam = StallingCamera(frames=60)
    try:
        lis = Listener(tmp_path)
        proc = start(lis, f"video:http://127.0.0.1:{cam.port}/x.mjpg",
                     _config(tmp_path, "[source]\ntimeout_s = 30\n"), "--headless")
        procs.append((proc, lis))
        lis.wait_for("READY=1", START_TIMEOUT_S, proc)
        assert cam.stalled.wait(60), "the camera never served its frames"
        lis.poll(1.0)            # the grabber is inside OpenCV's read() now
        assert proc.poll() is None
        _clear_state(tmp_path / "state")
        took, rc, err = stop(proc)
    finally:
        cam.close()
    assert rc == 0, err
    assert took <= BOUND_S, f"SIGTERM with the camera stuck in read() took {took:.2f} s"
    assert "stopping: the source did not finish" in err, err   # it really was stuck
    _assert_state_saved(tmp_path / "state")


def test_f6_sigterm_with_a_full_capture_queue(tmp_path, monkeypatch, procs):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = _config(tmp_path, '[capture]\nformat = "png"\nmin_free_mb = 0.0\n'
                               "[sim]\nfps = 10.0\nwidth = 2028\nheight = 1520\n")
    lis = Listener(tmp_path)
    proc = start(lis, "sim", config, "--headless", "--web", f"127.0.0.1:{port}",
                 "--capture-dir", str(tmp_path / "cap"))
    procs.append((proc, lis))
    lis.wait_for("READY=1", START_TIMEOUT_S, proc)
    lis.wait_for("WATCHDOG=1", 60, proc)          # frames are flowing
    queued = 0
    for _ in range(24):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/api/capture", b"{}", {"Content-Type": "application/json"})
        queued += json.loads(c.getresponse().read())["capture"]["ok"]
        c.close()
    assert queued >= 16, f"only {queued} shutter presses were queued"
    _clear_state(tmp_path / "state")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)        # an impatient second Ctrl-C changes nothing
    _, err = proc.communicate(timeout=30)
    took, rc = time.monotonic() - t0, proc.returncode
    assert rc == 0 and "Traceback" not in err, err
    assert took <= BOUND_S, f"SIGTERM with {queued} captures queued took {took:.2f} s"
    _assert_state_saved(tmp_path / "state")
    images = sorted((tmp_path / "cap").glob("*.png"))
    assert len(images) < queued or "capture queue" not in err
    for img in images:           # whatever was saved is whole, with its sidecar
        assert img.with_suffix(".json").exists(), img
