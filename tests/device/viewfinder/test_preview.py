"""The Pi preview overlay against the fake picamera2 module (tests/device/fake_picamera2.py)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from device.config import OverlayConfig, PicameraConfig, load_config
from device.viewfinder.preview import PicameraPreview, pick_backend
from device.scoring.classic import ClassicScorer
from device.sources.picam import Picamera2Source
from device.viewfinder.state import Viewfinder
from tests.device import fake_picamera2

PEAKING_BGR = (255, 0, 255)      # magenta: absent from the test photo's saturated colours


@pytest.fixture
def camera(monkeypatch, photo_bgr):
    fake_picamera2.install(monkeypatch, photo_bgr)
    src = Picamera2Source(PicameraConfig(main_size=(1280, 960), lores_size=(640, 480)))
    yield src
    src.close()


def run_frames(src, vf, n=3):
    scorer = ClassicScorer()
    for _ in range(n):
        frame = src.read()
        vf.on_frame(frame, scorer.score(frame))
    return frame


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_backend_choice_follows_the_display():
    assert pick_backend("auto", {"DISPLAY": ":0"}) == "QTGL"
    assert pick_backend("auto", {"WAYLAND_DISPLAY": "wayland-0"}) == "QTGL"
    assert pick_backend("auto", {"DISPLAY": "host:10.0"}) == "QT"
    assert pick_backend("auto", {}) == "DRM"
    assert pick_backend("drm", {"DISPLAY": ":0"}) == "DRM"


def test_set_overlay_gets_a_window_sized_rgba_layer(camera):
    vf = Viewfinder(OverlayConfig(peaking_colour="#ff00ff", heatmap=True))
    preview = PicameraPreview(camera, vf, "overlay", "drm", size=(1024, 768))
    try:
        cam = camera.picam2
        starts = [c for c in cam.calls if c[0] == "start_preview"]
        assert starts and starts[0][1] == ("DRM",) and starts[0][2] == {"width": 1024, "height": 768}
        run_frames(camera, vf)
        wait_for(lambda: cam.overlay is not None)
        ov = cam.overlay
        assert ov.shape == (768, 1024, 4) and ov.dtype == np.uint8
        # The heat map covers the frame translucently; peaking pixels are opaque magenta (RGBA).
        alpha = ov[..., 3]
        assert (alpha > 0).all() and (alpha < 255).mean() > 0.9
        opaque = ov[alpha == 255][:, :3]
        assert ((opaque == (255, 0, 255)).all(axis=1)).sum() > 100
    finally:
        preview.close()
    assert camera.picam2.overlay is None                      # cleared on close


def test_post_callback_draws_into_main_and_frames_stay_clean(camera):
    vf = Viewfinder(OverlayConfig(peaking_colour="#ff00ff"))
    preview = PicameraPreview(camera, vf, "post_callback")
    try:
        cam = camera.picam2
        assert cam.post_callback is not None and preview.burns_in_main
        frame = run_frames(camera, vf)
        camera.read()                                         # the callback draws with the newest result
        main = cam._buffers["main"]
        assert main.shape == (960, 1280, 3)
        drawn = (main == PEAKING_BGR).all(axis=2).sum()
        assert drawn > 500
        # The frame the loop (and capture) got is clean: no peaking colour burned in.
        assert (frame.color == PEAKING_BGR).all(axis=2).sum() < 0.05 * drawn
        assert preview.updates >= 1
    finally:
        preview.close()
    assert camera.picam2.post_callback is None


def test_a_failing_draw_never_reaches_the_camera_thread(camera, caplog):
    vf = Viewfinder()
    preview = PicameraPreview(camera, vf, "post_callback")
    try:
        run_frames(camera, vf, 1)
        vf.draw_into = None                                   # any bug inside drawing
        camera.read()                                         # must not raise
        assert "drawing the overlay failed" in caplog.text
    finally:
        preview.close()


def test_sinks_are_built_only_when_wanted(camera, tmp_path):
    from device.app.wiring import build_app
    from device.sources.sim import SimCamera

    def viewers(overrides, source, headless=False):
        cfg = load_config(overrides={"service": {"state_dir": str(tmp_path)}, **overrides})
        app = build_app(cfg, source, headless=headless, environ={})
        try:
            return app, [type(s).__name__ for s in app.sinks
                         if type(s).__name__ in ("Viewfinder", "PicameraPreview", "WebViewfinder")]
        finally:
            app.close()

    assert viewers({"overlay": {"preview": "none"}}, camera)[1] == []
    assert viewers({}, camera, headless=True)[1] == []
    app, names = viewers({"overlay": {"preview": "post_callback"}}, camera)
    assert names == ["Viewfinder", "PicameraPreview"] and app.viewfinder is not None
    # The simulator has no Pi preview, and without --web no viewfinder at all.
    sim = SimCamera()
    try:
        app, names = viewers({"overlay": {"preview": "post_callback"}}, sim)
        assert names == [] and app.viewfinder is None
    finally:
        sim.close()
