"""SIGTERM's stop inside its budget (hardening case F6), in process: with the capture
writer stuck and its queue full, the defect map and the motor position are saved first,
the motor is de-energised, and the stop returns without the queue."""
from __future__ import annotations

import json
import threading

import pytest

from device.app.runner import RunOptions, Runner


@pytest.fixture
def runner(tmp_path, monkeypatch):
    from gpiozero.pins.mock import MockFactory

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[source]\nspec = "sim"\n[sim]\nwidth = 320\nheight = 240\n'
                   f'[models]\nenable_focus = false\nenable_defects = false\n'
                   f'[defects]\nlive = true\nevery_n_frames = 1\nsave_interval_s = 600\n'
                   f'[motor]\nenabled = true\ndriver = "stepdir"\nstep_pin = 17\ndir_pin = 27\n'
                   f'enable_pin = 22\n'
                   f'[capture]\nformat = "png"\nmin_free_mb = 0.0\n'
                   f'[service]\nstate_dir = "{tmp_path / "state"}"\n')
    factory = MockFactory()
    r = Runner(RunOptions(config_path=str(cfg), frames=3), pin_factory=factory)
    yield r
    r.loop.close()
    factory.close()


def test_f6_a_full_capture_queue_waits_behind_the_saved_state_and_is_abandoned(runner, tmp_path):
    app = runner.app
    runner.loop.run()
    gate = threading.Event()
    writing = threading.Event()

    def stuck_write(**_kw):          # a writer behind on a slow card
        writing.set()
        gate.wait()
        raise OSError(5, "Input/output error")

    app.capture.writer.write = stuck_write
    try:
        answers = [app.capture.capture_now() for _ in range(20)]
        assert writing.wait(10)
        assert sum(a["ok"] for a in answers) >= 16 and not answers[-1]["ok"]   # queue full
        app.motor.move_to(40)
        app.motor.wait(10)

        runner.stop_budget_s = 1.0
        stop = runner.stop_bounded()
    finally:
        gate.set()
    names = [o.name for o in stop.outcomes]
    assert names == ["the defect map", "the motor", "the capture queue", "the sinks", "the source"]
    assert stop.abandoned() == ["the capture queue"]
    state = tmp_path / "state"
    assert json.loads((state / "defects.json").read_text())["shape"] == [240, 320]
    assert json.loads((state / "motor-position.json").read_text())["position"] == 40
    assert app.motor.closed and not app.motor.energised
    assert runner.source.closed
