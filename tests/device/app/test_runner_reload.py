"""SIGHUP reloads that cannot apply to the running camera (hardening case F7): each is
logged, the old config stays in force everywhere, and the loop keeps running."""
from __future__ import annotations

import logging

import pytest

from device.app.runner import RunOptions, Runner
from device.loop.sink import Sink

GOOD = ('[source]\nspec = "sim"\n[sim]\nwidth = 640\nheight = 480\n'
        '[models]\nenable_focus = false\nenable_defects = false\n'
        '[scoring]\nroi = [100, 100, 200, 200]\n')


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    path = tmp_path / "c.toml"
    path.write_text(GOOD)
    runners = []

    def make(frames: int) -> Runner:
        r = Runner(RunOptions(config_path=str(path), frames=frames))
        runners.append(r)
        return r

    yield path, make
    for r in runners:
        r.loop.close()


def test_f7_a_reload_before_the_first_frame_waits_for_it_and_is_checked_against_it(setup, caplog):
    path, make = setup
    runner = make(frames=4)
    path.write_text(GOOD.replace("[100, 100, 200, 200]", "[600, 400, 100, 100]"))
    runner.loop.reload_requested.set()          # SIGHUP while the camera is still starting
    with caplog.at_level(logging.INFO):
        runner.loop.run()                       # used to raise on the first frame: exit 2
    assert runner.loop.stats.frames == 4
    assert runner.cfg.scoring.roi == (100, 100, 200, 200)
    assert runner.app.scorer.roi == (100, 100, 200, 200)
    assert "keeping the old config" in caplog.text and "600,400,100,100" in caplog.text


def test_f7_an_roi_outside_the_running_frames_keeps_the_old_config(setup, caplog):
    path, make = setup
    runner = make(frames=2)
    runner.loop.run()
    path.write_text(GOOD.replace("[100, 100, 200, 200]", "[600, 400, 100, 100]"))
    runner.reload()
    assert runner.cfg.scoring.roi == (100, 100, 200, 200)
    assert "lies outside the running 640x480 frames" in caplog.text
    path.write_text(GOOD.replace("[100, 100, 200, 200]", "[10, 10, 0, 5]"))
    runner.reload()                              # refused by the converter, as at start-up
    assert runner.cfg.scoring.roi == (100, 100, 200, 200) and "width and height > 0" in caplog.text
    runner.loop.max_frames = 4
    runner.loop.run()
    assert runner.loop.last_result.roi == (100, 100, 200, 200)


class Broken(Sink):
    """A feature whose reconfigure raises on one config (a bug, as a reload meets it)."""

    def __init__(self):
        self.seen = []

    def reconfigure(self, cfg):
        self.seen.append(cfg.capture.prefix)
        if cfg.capture.prefix == "new":
            raise RuntimeError("cannot apply")


def test_f7_a_feature_whose_reconfigure_raises_rolls_everything_back(setup, caplog):
    path, make = setup
    runner = make(frames=2)
    broken, after = Broken(), Broken()
    runner.app.sinks.extend([broken, after])     # the loop feeds the same list
    runner.loop.run()
    path.write_text(GOOD.replace("[100, 100, 200, 200]", "[50, 50, 100, 100]")
                    + '[capture]\nprefix = "new"\n')
    runner.reload()
    assert "config reload failed in Broken, keeping the old config" in caplog.text
    assert runner.cfg.capture.prefix == "focus" and runner.cfg.scoring.roi == (100, 100, 200, 200)
    # What took the new config before the failure has the old one back; later parts never
    # saw the new one.
    assert runner.app.scorer.roi == (100, 100, 200, 200)
    assert runner.app.capture.writer.prefix == "focus" and runner.app.capture.cfg.prefix == "focus"
    assert broken.seen == ["new", "focus"] and after.seen == []
    runner.loop.max_frames = 4
    runner.loop.run()
    assert runner.loop.stats.frames == 4
