"""``systemctl reload`` with an ROI outside the running frames (hardening case F7), on the
real ``focus-assist run``: it used to apply the file, raise on the next frame and exit 2,
which the unit does not restart. Now it is logged, the old config kept, the service runs on."""
from __future__ import annotations

import signal

import pytest

from tests.systemd.test_service_process import START_TIMEOUT_S, Listener, start, stop

pytestmark = pytest.mark.slow

BASE = ("[sim]\nfps = 25.0\nwidth = 640\nheight = 480\n"
        "[models]\nenable_focus = false\nenable_defects = false\n")


def test_f7_reload_with_an_roi_outside_the_frame_keeps_the_service_running(tmp_path):
    config = tmp_path / "f7.toml"
    config.write_text(BASE + "[scoring]\nroi = [100, 100, 200, 200]\n")
    lis = Listener(tmp_path)
    proc = start(lis, "sim", config, "--headless")
    try:
        lis.wait_for("READY=1", START_TIMEOUT_S, proc)
        lis.wait_for("WATCHDOG=1", 30, proc)
        config.write_text(BASE + "[scoring]\nroi = [600, 400, 100, 100]\n")
        proc.send_signal(signal.SIGHUP)
        lis.wait_for("RELOADING=1", 10, proc)
        t_ready = lis.wait_for("READY=1", 10, proc)
        lis.poll(1.5)
        assert proc.poll() is None, "a reload that cannot apply must not end the service"
        assert [f for t, f in lis.fields("WATCHDOG=1") if t > t_ready], "frames stopped"
        took, rc, err = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        lis.close()
    assert rc == 0, err
    assert "keeping the old config" in err and "600,400,100,100 lies outside" in err, err
