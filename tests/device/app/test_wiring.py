"""The composition root: what build_app builds, where it keeps state, and one frame's
journey from the scorer through the overlay to /api/status."""
from __future__ import annotations

import http.client
import json

import numpy as np
import pytest

from device.app.wiring import build_app, validate_reload
from device.config import load_config
from device.errors import ConfigError
from device.loop.frame_loop import Loop
from device.sources.files import ImageSource
from device.sources.sim import SimCamera


@pytest.fixture
def no_systemd(monkeypatch, tmp_path):
    """A desk, not a service: no $STATE_DIRECTORY, $XDG_STATE_HOME in tmp."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "focus-assist"


def _run(app, frames: int) -> Loop:
    loop = Loop(app.source, app.scorer, app.sinks, max_frames=frames)
    loop.run()
    return loop


@pytest.mark.parametrize("systemd", [False, True], ids=["desk", "systemd"])
def test_captures_defect_map_and_motor_position_share_one_state_dir(no_systemd, monkeypatch, tmp_path, systemd):
    from gpiozero.pins.mock import MockFactory

    state = no_systemd
    if systemd:
        state = tmp_path / "var-lib"
        monkeypatch.setenv("STATE_DIRECTORY", f"{state}:{tmp_path / 'second'}")
    cfg = load_config(overrides={
        "sim": {"width": 320, "height": 240},
        "models": {"enable_focus": False},
        "capture": {"enabled": True, "min_free_mb": 0},
        "defects": {"live": True, "detector": "classic"},
        "motor": {"enabled": True, "driver": "stepdir", "step_pin": 17, "dir_pin": 27,
                  "speed": 5000.0, "acceleration": 0.0},
    })
    pf = MockFactory()
    try:
        app = build_app(cfg, SimCamera(cfg.sim), headless=True, pin_factory=pf, environ={})
        try:
            app.motor.move_to(40)
            app.motor.wait(5)
            _run(app, 3)
        finally:
            app.close()
    finally:
        pf.reset()
        pf.close()
    assert app.capture.dir == state / "captures" and app.capture.dir.is_dir()
    assert app.defect_map.map_file == state / "defects.json" and app.defect_map.map_file.exists()
    saved = json.loads((state / "motor-position.json").read_text())
    assert saved["position"] == 40
    assert not app.motor.energised                    # closing the app de-energised it


def test_a_part_that_fails_to_build_closes_the_ones_before_it(no_systemd, monkeypatch):
    from gpiozero.pins.mock import MockFactory

    cfg = load_config(overrides={
        "models": {"enable_focus": False},
        "motor": {"enabled": True, "driver": "stepdir", "step_pin": 17, "dir_pin": 27},
        "web": {"listen": "127.0.0.1:0"},
    })
    import device.viewfinder.web.server as server

    def refuse(*a, **kw):
        raise ConfigError("cannot serve the web viewfinder on 127.0.0.1:0: in use")

    monkeypatch.setattr(server, "_server_for", refuse)
    pf = MockFactory()
    try:
        with pytest.raises(ConfigError, match="cannot serve"):
            build_app(cfg, SimCamera(cfg.sim), headless=True, pin_factory=pf, environ={})
        # The motor built before the web server was closed: its pins can be claimed again
        # (gpiozero raises GPIOPinInUse for a pin a live device still holds).
        from gpiozero import DigitalOutputDevice
        for pin in (17, 27):
            DigitalOutputDevice(pin, pin_factory=pf).close()
    finally:
        pf.reset()
        pf.close()


def test_reload_is_checked_against_the_running_camera():
    old = load_config()
    validate_reload(load_config(overrides={"scoring": {"roi": [0, 0, 100, 100]}}), old, (480, 640))
    with pytest.raises(ConfigError, match="outside the running 640x480"):
        validate_reload(load_config(overrides={"scoring": {"roi": [600, 400, 100, 100]}}), old, (480, 640))


def test_the_cnn_heat_map_reaches_the_overlay_and_the_status(no_systemd, tmp_path, photo_bgr):
    """Scorer -> overlay heat layer -> /api/status, with the shipped focus net.

    The net's per-tile p(sharp) is what the heat layer shows (it used to write one key and
    the overlay read another, so the CNN heat map never appeared)."""
    import cv2

    cv2.imwrite(str(tmp_path / "astronaut.png"), photo_bgr)
    cfg = load_config(overrides={
        "models": {"num_threads": 1},
        "overlay": {"heatmap": True, "heatmap_source": "cnn"},
        "web": {"listen": "127.0.0.1:0"},
    })
    app = build_app(cfg, ImageSource(str(tmp_path / "astronaut.png")), headless=True, environ={})
    try:
        _run(app, 1)
        frame, result, _ = app.viewfinder.latest()
        assert result.cnn is not None and result.cnn.tile_map is not None
        heat = app.viewfinder.layers(frame, result).heat
        assert heat is not None and heat.shape == result.cnn.tile_map.shape
        assert np.array_equal(heat, np.clip(result.cnn.tile_map, 0, 1))
        assert heat.max() > 0.5                      # a sharp photo: some tiles are hot
        c = http.client.HTTPConnection("127.0.0.1", app.web.port, timeout=5)
        c.request("GET", "/api/status")
        status = json.loads(c.getresponse().read())
        c.close()
        assert status["features"]["cnn"] and status["features"]["heatmap_cnn"]
        assert status["focus"]["label"] == result.cnn.label
        assert status["focus"]["sharp_prob"] == pytest.approx(result.cnn.sharp_prob, abs=1e-4)
    finally:
        app.close()


def test_the_web_viewfinder_is_handed_the_motor_gallery_and_defect_map(no_systemd, tmp_path):
    cfg = load_config(overrides={
        "models": {"enable_focus": False},
        "motor": {"enabled": True, "driver": "sim"},
        "defects": {"live": True},
        "capture": {"dir": str(tmp_path / "shots")},
        "web": {"listen": "127.0.0.1:0"},
    })
    app = build_app(cfg, SimCamera(cfg.sim), headless=True, environ={})
    try:
        _run(app, 2)
        assert app.web.motor.motor is app.motor and app.web.defects is app.defect_map
        assert app.web.gallery.dir == app.capture.dir
        c = http.client.HTTPConnection("127.0.0.1", app.web.port, timeout=5)
        c.request("GET", "/api/status")
        status = json.loads(c.getresponse().read())
        c.close()
        assert status["motor"]["position"] == app.motor.position and status["motor"]["driver"] == "sim"
        assert status["features"]["gallery"] and status["features"]["motor"]
    finally:
        app.close()
