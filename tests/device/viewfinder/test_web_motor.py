"""The motor controls: ``POST /api/motor`` against the real server and the simulated lens,
and the desk's queue on its own (a frame-clocked motor, advanced by hand)."""
from __future__ import annotations

import time

import pytest

from device.config import MotorConfig
from device.lens.motor import open_motor
from device.viewfinder.web.api import ApiError
from device.viewfinder.web.motor_api import MotorDesk
from tests.device.viewfinder.web_harness import LiveViewfinder


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    lv = LiveViewfinder(features_dir=tmp_path_factory.mktemp("motor"))
    lv.wait_frames(3)
    yield lv
    lv.stop()


def _wait(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.02)


def _settle(lv) -> int:
    _wait(lambda: not lv.motor.busy and lv.web.motor.status().busy is False)
    return lv.motor.position


def test_status_carries_the_motor_flat(live):
    _, _, s = live.request("GET", "/api/status")
    m = s["motor"]
    assert s["features"]["motor"] is True
    assert set(m) >= {"position", "limits", "busy", "driver"}
    assert m["driver"] == "sim" and m["limits"] == list(live.motor.limits)
    assert m["position"] == live.motor.position and isinstance(m["busy"], bool)
    coarse, fine = live.autofocus.search_steps()
    assert (m["fine_step"], m["coarse_step"]) == (fine, coarse)


def test_jog_and_goto_move_the_simulated_lens(live):
    p0 = _settle(live)
    lo, hi = live.motor.limits
    step = 7 if p0 + 14 <= hi else -7
    lens0 = live.source.lens_position
    for _ in range(2):                      # jogs add up, whether or not the first has started
        status, _, body = live.request("POST", "/api/motor", {"jog": step})
        assert status == 200 and body["motor"]["target"] in (p0 + step, p0 + 2 * step)
    _wait(lambda: live.motor.position == p0 + 2 * step and not live.motor.busy)
    assert live.source.lens_position != lens0
    goal = (lo + hi) // 2 + 3
    status, _, body = live.request("POST", "/api/motor", {"goto": goal})
    assert status == 200 and body["motor"]["target"] == goal
    _wait(lambda: live.motor.position == goal and not live.motor.busy)
    _, _, s = live.request("GET", "/api/status")
    assert s["motor"]["position"] == goal and s["motor"]["busy"] is False


@pytest.mark.parametrize("body, side", [({"goto": 10**6}, "upper"), ({"goto": -1}, "lower"),
                                        ({"jog": 10**6}, "upper"), ({"jog": -10**6}, "lower")])
def test_a_move_past_a_soft_limit_is_refused_and_the_motor_stays(live, body, side):
    p0 = _settle(live)
    moves = live.motor.moves
    status, _, err = live.request("POST", "/api/motor", body)
    assert status == 400 and err["limit"] == side and err["limits"] == list(live.motor.limits)
    assert f"{side} soft limit" in err["error"] and "did not move" in err["error"]
    live.wait_frames(live.loop.stats.frames + 5)
    assert live.motor.position == p0 and live.motor.moves == moves and not live.motor.busy


@pytest.mark.parametrize("body", [{}, {"jog": 1.5}, {"jog": "5"}, {"jog": True}, {"goto": None},
                                  {"jog": 1, "goto": 2}, {"stop": False}, {"stop": 1}, {"spin": 3}])
def test_malformed_motor_bodies_are_400(live, body):
    moves = live.motor.moves
    status, _, err = live.request("POST", "/api/motor", body)
    assert status == 400 and err["error"]
    assert live.motor.moves == moves


def test_non_json_and_wrong_method(live):
    status, _, err = live.request("POST", "/api/motor", b"jog=5")
    assert status == 400 and "JSON" in err["error"]
    status, _, _ = live.request("GET", "/api/motor")
    assert status == 405


def test_a_jog_while_the_autofocus_runs_is_409_and_stop_cancels_it(live):
    _settle(live)
    live.request("POST", "/api/autofocus", {})
    _wait(lambda: live.autofocus.state == "scanning")
    status, _, err = live.request("POST", "/api/motor", {"jog": 5})
    assert status == 409 and "autofocus" in err["error"]
    status, _, body = live.request("POST", "/api/motor", {"stop": True})
    assert status == 200
    _wait(lambda: live.autofocus.state == "idle")
    assert live.autofocus.reason == "stopped from the web page"
    here = _settle(live)
    live.wait_frames(live.loop.stats.frames + 5)
    assert live.motor.position == here        # no return to the start after a stop


def test_no_motor_is_a_404():
    pytest.importorskip("skimage.data")
    lv = LiveViewfinder()
    try:
        status, _, err = lv.request("POST", "/api/motor", {"jog": 1})
        assert status == 404 and "motor" in err["error"]
    finally:
        lv.stop()


# --- the desk alone: a motor clocked by hand -------------------------------------------

def _desk():
    motor = open_motor(MotorConfig(driver="sim", backlash_overshoot=0), threaded=False)
    return motor, MotorDesk(motor, steps=(5, 50))


def test_an_accepted_move_waits_for_the_loop_thread():
    motor, desk = _desk()
    try:
        desk.command({"goto": 400})
        assert motor.position == 0 and not motor.busy and desk.status().busy
        desk.apply()
        motor.advance(10.0)
        assert motor.position == 400
    finally:
        motor.close()


def test_stop_acts_at_once_without_a_frame():
    motor, desk = _desk()
    try:
        desk.command({"goto": 900})
        desk.apply()
        motor.advance(0.05)
        mid = motor.position
        assert 0 < mid < 900 and motor.busy
        desk.command({"stop": True})
        motor.advance(1.0)
        assert motor.position == mid and not motor.busy
        desk.command({"jog": 10})            # a queued move dropped by a stop never runs
        desk.command({"stop": True})
        desk.apply()
        motor.advance(1.0)
        assert motor.position == mid
    finally:
        motor.close()


def test_a_refused_move_is_never_queued():
    motor, desk = _desk()
    try:
        with pytest.raises(ApiError) as exc:
            desk.command({"jog": -1})
        assert exc.value.status == 400 and exc.value.extra["limit"] == "lower"
        desk.apply()
        motor.advance(1.0)
        assert motor.position == 0 and motor.moves == 0
    finally:
        motor.close()


# --- fuzzed: whatever arrives, the motor stays inside its soft limits ----------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_values = st.one_of(st.none(), st.booleans(), st.integers(-10**7, 10**7),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6),
                    st.lists(st.integers(), max_size=3))
_bodies = st.dictionaries(st.sampled_from(["jog", "goto", "stop", "x"]), _values, max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_fuzzed_motor_commands_never_pass_a_limit(live, body):
    status, headers, payload = live.request("POST", "/api/motor", body)
    assert status in (200, 400, 409), (status, payload)
    assert headers["Content-Type"] == "application/json"
    lo, hi = live.motor.limits
    assert lo <= live.motor.position <= hi and lo <= live.motor.target <= hi
    assert lo <= live.web.motor.status().target <= hi
    assert live._thread.is_alive() and live.loop.stats.faults == 0


def test_a_motor_on_its_own_thread_as_real_hardware_runs():
    motor = open_motor(MotorConfig(driver="sim", sim_speed=2000.0), threaded=True)
    desk = MotorDesk(motor)
    try:
        assert desk.steps == (25, 100)                      # a 40th and a 10th of 0..1000
        desk.command({"goto": 200})
        desk.apply()
        assert motor.wait(timeout=10) and motor.position == 200
        desk.command({"jog": -desk.steps[0]})
        desk.apply()
        assert motor.wait(timeout=10) and motor.position == 175
    finally:
        motor.close()
    assert not motor.energised
