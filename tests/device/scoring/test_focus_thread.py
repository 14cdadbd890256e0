"""The focus net on its own thread (``models.focus_thread``): results carry the newest
verdict, say which frame it judged, and never wait for the net."""
from __future__ import annotations

import threading
import time

import cv2
import pytest

from device.config import load_config
from device.scoring.classic import ClassicScorer
from device.scoring.focus_net import CnnScorer, FocusScorer, scorer_from_config
from device.sources.base import Frame


class GatedFocus:
    """The real focus net, held at a gate the test opens (no sleeps, no races)."""

    def __init__(self, real: FocusScorer):
        self.real = real
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0

    def analyse(self, grey, roi=None):
        self.gate.wait(30)
        self.calls += 1
        return self.real.analyse(grey, roi)


@pytest.fixture(scope="module")
def real():
    return FocusScorer.from_path(num_threads=1)


def _wait_judged(scorer: CnnScorer, n: int) -> None:
    deadline = time.monotonic() + 30
    while scorer._worker.judged < n:
        assert time.monotonic() < deadline, "the focus net worker never finished"
        time.sleep(0.005)


def test_worker_verdicts_lag_the_frame_and_name_the_frame_they_judged(real, photo_grey):
    sharp = photo_grey
    blurred = cv2.GaussianBlur(photo_grey, (0, 0), 4.0)
    direct = real.analyse(blurred)           # before the worker shares the interpreter
    gated = GatedFocus(real)
    s = CnnScorer(ClassicScorer(), gated, background=True)
    try:
        r0 = s.score(Frame(grey=sharp, timestamp=0.0, index=0))
        assert r0.cnn.frame == 0 and r0.label == "sharp"          # first frame: judged at once
        gated.gate.clear()
        r1 = s.score(Frame(grey=blurred, timestamp=0.1, index=1))
        assert r1.focus < r0.focus / 3                             # the classic part is this frame's
        assert r1.cnn is r0.cnn                                    # the net's is the newest it has
        gated.gate.set()
        _wait_judged(s, 1)
        r2 = s.score(Frame(grey=blurred, timestamp=0.2, index=2))
        assert r2.cnn.frame == 1
        # the net's own answer on frame 1 (the reported label is fused with the curve)
        assert r2.cnn.label == direct.label != "sharp"
        assert r2.cnn.sharp_prob == direct.sharp_prob
        assert r2.label != "sharp"
        assert r2.to_json()["cnn_frame"] == 1
    finally:
        gated.gate.set()
        s.close()
    assert not s._worker._thread.is_alive()
    s.close()                                                     # idempotent


def test_frame_thread_mode_judges_every_frame_itself(real, photo_grey):
    s = CnnScorer(ClassicScorer(), real)
    r = s.score(Frame(grey=photo_grey, timestamp=0.0, index=5))
    assert not s.background and r.cnn.frame == 5
    s.close()


@pytest.mark.parametrize("where, live, background", [
    ("auto", True, True), ("auto", False, False),
    ("frame", True, False), ("worker", False, True)])
def test_where_the_net_runs_follows_the_config_and_the_source(where, live, background):
    cfg = load_config(overrides={"models": {"num_threads": 1, "focus_thread": where}})
    s = scorer_from_config(cfg, ClassicScorer(cfg.scoring), live=live)
    try:
        assert s.background is background
    finally:
        s.close()


def test_wiring_keeps_the_simulator_and_files_on_the_frame_thread(tmp_path):
    from device.app.wiring import build_app
    from device.sources.sim import SimCamera

    cfg = load_config(overrides={"models": {"num_threads": 1, "enable_defects": False},
                                 "service": {"state_dir": str(tmp_path)}})
    cam = SimCamera(cfg.sim)
    app = build_app(cfg, cam, headless=True, environ={})
    try:
        assert cam.live and not app.scorer.background
    finally:
        app.close()
        cam.close()


def test_worker_skips_frames_that_waited_and_judges_the_newest(real, photo_grey):
    """While the net is busy with one frame, four more are handed over: it judges the
    newest of them next, not the oldest, and no frame waits longer than one verdict."""
    gated = GatedFocus(real)
    s = CnnScorer(ClassicScorer(), gated, background=True)
    try:
        s.score(Frame(grey=photo_grey, timestamp=0.0, index=0))   # judged on this thread
        gated.gate.clear()
        s.score(Frame(grey=photo_grey, timestamp=0.1, index=1))   # the worker takes it, waits
        deadline = time.monotonic() + 30
        while s._worker._inbox.qsize():
            assert time.monotonic() < deadline
            time.sleep(0.005)
        for i in range(2, 6):
            s.score(Frame(grey=photo_grey, timestamp=0.1 * i, index=i))
        gated.gate.set()
        _wait_judged(s, 2)
        time.sleep(0.05)
        assert s._worker.judged == 2 and s._worker.latest.frame == 5, (s._worker.judged, s._worker.latest.frame)
        assert gated.calls == 3                                   # frames 0, 1 and 5
    finally:
        gated.gate.set()
        s.close()
