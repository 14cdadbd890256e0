"""Focus motor drivers on gpiozero's MockFactory: exact pin sequences, soft limits under
random command sequences, backlash-safe approach, de-energising, the position store."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

pytest.importorskip("gpiozero")
from gpiozero.pins.mock import MockFactory, MockPWMPin  # noqa: E402

from device.config import MotorConfig  # noqa: E402
from device.errors import MotorError  # noqa: E402
from device.lens.motor import open_motor  # noqa: E402
from device.lens.motor.store import PositionStore  # noqa: E402
from device.lens.motor.uln2003 import HALF_STEP  # noqa: E402

STEP, DIR, EN = 17, 27, 22
COILS = (5, 6, 13, 19)
SERVO = 18


# Every pin change in the order it happened (the mock's own timestamps are per-pin deltas).
EVENTS: list[tuple[int, float, str]] = []
_DIR_AT_MARK = [False]


class LoggedPin(MockPWMPin):
    """gpiozero's MockPWMPin, also appending each change to one ordered log."""

    def _change_state(self, value):
        changed = super()._change_state(value)
        if changed:
            fn = "closing" if getattr(self, "_closing", False) else self.function
            EVENTS.append((int(self.info.name.replace("GPIO", "")), float(value), fn))
        return changed

    def close(self):
        # The mock zeroes a PWM pin as it lets go of it: that is not the code driving it.
        self._closing = True
        try:
            super().close()
        finally:
            self._closing = False


def new_factory() -> MockFactory:
    EVENTS.clear()
    _DIR_AT_MARK[0] = False
    return MockFactory(pin_class=LoggedPin)


@pytest.fixture
def pf():
    factory = new_factory()
    yield factory
    factory.reset()
    factory.close()


def driven(pin: int) -> float:
    """The last level the code drove on ``pin`` (after close() the mock pin is an input)."""
    return [v for n, v, fn in EVENTS if n == pin and fn == "output"][-1]


def stepdir_cfg(**kw) -> MotorConfig:
    base = dict(driver="stepdir", step_pin=STEP, dir_pin=DIR, enable_pin=EN,
                min_position=0, max_position=1000, backlash_overshoot=30, acceleration=0,
                speed=1000.0)
    base.update(kw)
    return MotorConfig(**base)


def make(cfg, pf, tmp_path, position=None, threaded=False):
    store = PositionStore(tmp_path / "pos.json")
    if position is not None:
        store.save(position)
    return open_motor(cfg, pin_factory=pf, store=store, threaded=threaded)


def run(m):
    """Frame-clocked motors: run until idle, in small slices (no idle release meanwhile)."""
    for _ in range(100000):
        if not m.busy:
            return
        m.advance(0.005)
    raise AssertionError("motor never stopped")


def replay(start: int) -> list[int]:
    """Positions the STEP/DIR pins actually drove since the last ``mark()``."""
    pos, up, out = start, _DIR_AT_MARK[0], []
    for pin, value, _fn in EVENTS:
        if pin == DIR:
            up = bool(value)
        elif pin == STEP and value:   # rising STEP edge: one step
            pos += 1 if up else -1
            out.append(pos)
    return out


def mark() -> None:
    """Forget the pin history so far (replay from the current position)."""
    dirs = [v for n, v, _ in EVENTS if n == DIR]
    _DIR_AT_MARK[0] = bool(dirs[-1]) if dirs else _DIR_AT_MARK[0]
    EVENTS.clear()


# --- STEP/DIR --------------------------------------------------------------------------

def test_stepdir_exact_pin_sequence(pf, tmp_path):
    m = make(stepdir_cfg(), pf, tmp_path, position=100)
    en, step, dirp = pf.pin(EN), pf.pin(STEP), pf.pin(DIR)
    assert en.state == 1 and step.state == 0          # disabled (EN is active low) at rest
    mark()
    m.move_to(105, compensate=False)
    run(m)
    assert [bool(s.state) for s in step.states] == [False] + [True, False] * 5
    assert [bool(s.state) for s in dirp.states] == [False, True]      # DIR high = up
    # The mock pin starts low; the driver claims it disabled (high), enables it (low) to move.
    assert [bool(s.state) for s in en.states] == [False, True, False]
    # ENABLE, then DIR, are driven before the first STEP edge.
    order = [(n, v) for n, v, _ in EVENTS if n in (EN, DIR, STEP)]
    assert order[:3] == [(EN, 0.0), (DIR, 1.0), (STEP, 1.0)]
    assert m.position == 105
    m.move_to(103, compensate=False)
    run(m)
    assert [bool(s.state) for s in dirp.states] == [False, True, False]
    assert [bool(s.state) for s in step.states] == [False] + [True, False] * 7
    m.close()
    assert driven(EN) == 1                              # de-energised on close


def test_first_short_move_takes_up_unknown_play(pf, tmp_path):
    m = make(stepdir_cfg(), pf, tmp_path, position=100)
    m.move_to(105)     # where the gear play sits after a restart is unknown
    run(m)
    path = replay(100)
    assert min(path) == 75 and path[-31:] == list(range(75, 106))[-31:]


def test_stepdir_reversal_makes_backlash_safe_final_approach(pf, tmp_path):
    m = make(stepdir_cfg(), pf, tmp_path, position=500)
    m.move_to(400)                     # against the approach direction ("up")
    run(m)
    path = replay(500)
    assert min(path) == 370 and path[-1] == 400        # 30 past, then up to the target
    assert path[-31:] == list(range(370, 401))[-31:]   # the last 30 steps all go up
    assert m.approached


def test_no_overshoot_when_already_approaching(pf, tmp_path):
    m = make(stepdir_cfg(), pf, tmp_path, position=500)
    m.move_to(470)
    run(m)
    mark()
    m.move_to(520)                     # same direction as the approach, play already taken up
    run(m)
    assert replay(470) == list(range(471, 521))


@pytest.mark.parametrize("approach,expect_last_dir", [("up", 1), ("down", -1)])
def test_final_approach_always_from_the_configured_side(pf, tmp_path, approach, expect_last_dir):
    m = make(stepdir_cfg(approach=approach), pf, tmp_path, position=500)
    for target in (600, 450, 451, 800, 200, 201, 199):
        mark()
        start = m.position
        m.move_to(target)
        run(m)
        path = replay(start)
        assert path[-1] == target
        if len(path) >= 2:
            assert (path[-1] - path[-2]) == expect_last_dir


def test_overshoot_is_clamped_at_the_soft_limit(pf, tmp_path):
    m = make(stepdir_cfg(min_position=0), pf, tmp_path, position=200)
    m.move_to(10)
    run(m)
    path = replay(200)
    assert min(path) == 0 and path[-1] == 10


@pytest.mark.parametrize("chip,micro,levels", [("a4988", 16, (1, 1, 1)), ("drv8825", 32, (1, 0, 1)),
                                               ("tmc2208", 2, (1, 0)), ("a4988", 1, (0, 0, 0))])
def test_microstep_pins(pf, tmp_path, chip, micro, levels):
    pins = (23, 24, 25)[:len(levels)]
    m = make(stepdir_cfg(chip=chip, microsteps=micro, microstep_pins=pins), pf, tmp_path)
    assert tuple(int(pf.pin(p).state) for p in pins) == levels
    m.close()


def test_microstep_setting_the_chip_cannot_do_is_an_error(pf, tmp_path):
    with pytest.raises(MotorError, match="1/32"):
        make(stepdir_cfg(chip="a4988", microsteps=32, microstep_pins=(23, 24, 25)), pf, tmp_path)


def test_threaded_motion_does_not_block_and_completes(pf, tmp_path):
    m = make(stepdir_cfg(speed=2000.0, acceleration=20000.0), pf, tmp_path, position=0,
             threaded=True)
    with m:
        m.move_to(200)
        assert m.busy                    # returned at once, moving in the background
        assert m.wait(timeout=5.0)
        assert m.position == 200
    assert driven(EN) == 1


# --- soft limits under arbitrary command sequences ------------------------------------------

command = st.one_of(
    st.tuples(st.just("to"), st.integers(-300, 1300)),
    st.tuples(st.just("by"), st.integers(-1300, 1300)),
    st.tuples(st.just("advance"), st.floats(0.0, 0.2)),
    st.tuples(st.just("stop"), st.none()),
    st.tuples(st.just("release"), st.none()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cmds=st.lists(command, min_size=1, max_size=25), start=st.integers(100, 900),
       overshoot=st.integers(0, 200), approach=st.sampled_from(["up", "down"]))
def test_soft_limits_never_exceeded(tmp_path, cmds, start, overshoot, approach):
    factory = new_factory()
    try:
        cfg = stepdir_cfg(min_position=100, max_position=900, backlash_overshoot=overshoot,
                          approach=approach, speed=4000.0, acceleration=50000.0)
        m = make(cfg, factory, tmp_path, position=start)
        for kind, arg in cmds:
            try:
                if kind == "to":
                    m.move_to(arg)
                elif kind == "by":
                    m.move_by(arg)
                elif kind == "advance":
                    m.advance(arg)
                elif kind == "stop":
                    m.stop()
                else:
                    m.release()
            except MotorError:
                pass      # a target past the limits is refused, never clipped silently
            assert 100 <= m.position <= 900
        m.advance(5.0)
        path = replay(start)
        assert all(100 <= p <= 900 for p in path), (min(path), max(path))
        assert (path[-1] if path else start) == m.position
        m.close()
    finally:
        factory.reset()
        factory.close()


def test_target_outside_limits_is_refused(pf, tmp_path):
    m = make(stepdir_cfg(), pf, tmp_path, position=0)
    with pytest.raises(MotorError, match="soft limits"):
        m.move_to(1001)
    with pytest.raises(MotorError, match="soft limits"):
        m.move_by(-1)
    assert m.position == 0 and not m.busy


# --- ULN2003 ---------------------------------------------------------------------------------

def coil_pattern(pf):
    return tuple(int(pf.pin(p).state) for p in COILS)


def test_uln2003_half_step_order(pf, tmp_path):
    cfg = MotorConfig(driver="uln2003", coil_pins=COILS, backlash_overshoot=0)
    m = make(cfg, pf, tmp_path, position=100)
    assert coil_pattern(pf) == (0, 0, 0, 0)           # not energised at rest
    seen = []
    for _ in range(9):
        m.move_by(1)
        run(m)
        seen.append(coil_pattern(pf))
    assert seen == [HALF_STEP[(101 + i) % 8] for i in range(9)]
    for a, b in zip(seen, seen[1:]):
        assert sum(x != y for x, y in zip(a, b)) == 1   # one input changes per half step
    down = []
    for _ in range(3):
        m.move_by(-1)
        run(m)
        down.append(coil_pattern(pf))
    assert down == [HALF_STEP[p % 8] for p in (108, 107, 106)]
    m.release()
    assert coil_pattern(pf) == (0, 0, 0, 0)
    m.move_by(1)                                       # re-energised on the same phase
    run(m)
    assert coil_pattern(pf) == HALF_STEP[107 % 8]
    m.close()
    assert tuple(driven(p) for p in COILS) == (0, 0, 0, 0)


def test_uln2003_idle_release(pf, tmp_path):
    cfg = MotorConfig(driver="uln2003", coil_pins=COILS, idle_release_s=0.5)
    m = make(cfg, pf, tmp_path, position=0)
    m.move_to(10)
    run(m)
    assert any(coil_pattern(pf))
    m.advance(1.0)
    assert coil_pattern(pf) == (0, 0, 0, 0)
    m.close()


def test_hold_when_idle_release_disabled(pf, tmp_path):
    cfg = MotorConfig(driver="uln2003", coil_pins=COILS, release_when_idle=False)
    m = make(cfg, pf, tmp_path, position=0)
    m.move_to(10)
    m.advance(10.0)
    assert any(coil_pattern(pf))
    m.close()
    assert tuple(driven(p) for p in COILS) == (0, 0, 0, 0)


# --- servo -----------------------------------------------------------------------------------

def test_servo_angle_and_detach(pf, tmp_path):
    cfg = MotorConfig(driver="servo", servo_pin=SERVO, min_position=0, max_position=180,
                      min_angle=-90.0, max_angle=90.0, min_pulse_width=0.0005,
                      max_pulse_width=0.0025, backlash_overshoot=0)
    m = make(cfg, pf, tmp_path, position=90)
    pin = pf.pin(SERVO)
    assert not pin.state                                 # detached at rest
    m.move_to(180)
    run(m)
    assert m.angle == pytest.approx(90.0)
    assert pin.state == pytest.approx(0.0025 / 0.02)     # pulse width / frame width
    m.move_to(90)
    run(m)
    assert m.angle == pytest.approx(0.0, abs=1e-6)
    assert pin.state == pytest.approx(0.0015 / 0.02)
    m.move_to(45)
    run(m)
    assert m.angle == pytest.approx(-45.0)
    m.close()
    assert driven(SERVO) == 0


# --- lifecycle ---------------------------------------------------------------------------------

def test_close_is_idempotent_and_de_energises_after_an_exception(pf, tmp_path):
    m = make(stepdir_cfg(), pf, tmp_path, position=0)
    with pytest.raises(RuntimeError):
        with m:
            m.move_to(50)
            m.advance(0.01)
            assert pf.pin(EN).state == 0                  # energised
            raise RuntimeError("boom")
    assert driven(EN) == 1
    m.close()
    m.close()
    with pytest.raises(MotorError, match="closed"):
        m.move_to(10)


# --- position store ----------------------------------------------------------------------------

def test_position_round_trips_through_the_state_file(pf, tmp_path):
    path = tmp_path / "pos.json"
    m = open_motor(stepdir_cfg(), pin_factory=pf, store=PositionStore(path), threaded=False)
    m.move_to(321)
    run(m)
    m.close()
    assert json.loads(path.read_text())["position"] == 321
    m2 = open_motor(stepdir_cfg(), pin_factory=pf, store=PositionStore(path), threaded=False)
    assert m2.position == 321
    m2.close()


def test_move_in_progress_is_recorded(pf, tmp_path):
    path = tmp_path / "pos.json"
    m = open_motor(stepdir_cfg(speed=100.0), pin_factory=pf, store=PositionStore(path),
                   threaded=False)
    m.move_to(500)
    m.advance(0.05)
    saved = PositionStore(path).load()
    assert saved.moving and saved.position < 500     # a crash now leaves "uncertain" on disk
    m.stop()
    m.advance(0.0)
    m.close()
    assert not PositionStore(path).load().moving


def test_torn_write_leaves_the_old_position(tmp_path, monkeypatch):
    store = PositionStore(tmp_path / "pos.json")
    store.save(123)
    import device.common.atomic as atomic

    def crash(*_a, **_k):   # power cut between writing the temp file and the rename
        raise OSError("simulated power cut")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError):
        store.save(999)
    monkeypatch.undo()
    assert store.load().position == 123
    assert [p.name for p in tmp_path.iterdir()] == ["pos.json"]   # no temp file left


def test_damaged_position_file_is_set_aside(tmp_path, caplog):
    path = tmp_path / "pos.json"
    path.write_text('{"position": 12')   # what a non-atomic writer leaves after a crash
    assert PositionStore(path).load() is None    # issue 19 F12: start fresh, uncalibrated
    assert "damaged" in caplog.text and not path.exists()


def test_saved_position_outside_limits_is_refused(pf, tmp_path):
    with pytest.raises(MotorError, match="outside the soft limits"):
        make(stepdir_cfg(max_position=100), pf, tmp_path, position=500)


def test_missing_pins_are_a_config_error(pf, tmp_path):
    with pytest.raises(MotorError, match="step_pin"):
        make(MotorConfig(driver="stepdir"), pf, tmp_path)
    with pytest.raises(MotorError, match="coil_pins"):
        make(MotorConfig(driver="uln2003"), pf, tmp_path)
    with pytest.raises(MotorError, match="servo_pin"):
        make(MotorConfig(driver="servo"), pf, tmp_path)


# --- the position history: where the motor was at a past moment ---------------------------

def test_history_span_holds_each_position_until_the_next_step():
    from device.lens.motor.base import history_span

    hist = [(1.0, 10), (2.0, 11), (3.0, 12)]
    assert history_span(hist, 1.5, 1.5) == (10, 10)      # between entries: the earlier one
    assert history_span(hist, 2.0, 2.0) == (11, 11)      # at an entry: its position
    assert history_span(hist, 1.5, 2.5) == (10, 11)      # across a step: both
    assert history_span(hist, 1.0, 9.0) == (10, 12)
    assert history_span(hist, 3.5, 4.0) == (12, 12)      # after the last step: held
    assert history_span(hist, 0.5, 1.5) is None          # before the history: unknown
    assert history_span(hist, 2.5, 2.0) is None
    assert history_span([], 1.0, 1.0) is None


def test_motor_position_span_looks_up_its_own_steps():
    from device.lens.motor.base import HISTORY_STEPS
    from device.lens.motor.sim import SimMotor

    m = SimMotor(limits=(0, 5000), position=0, speed=1000.0, acceleration=0.0, threaded=False)
    m.move_to(10, compensate=False)
    m.advance(0.1)
    # steps 1..10 at 0, 1, ..., 9 ms (the first at once, then one a millisecond)
    assert m.position_span(0.0045) == (5, 5)
    assert m.position_span(0.0005, 0.0035) == (1, 4)
    assert m.position_span(0.05) == (10, 10)
    assert m.position_span(0.2) is None                  # later than the motor's clock now
    m.move_to(10 + HISTORY_STEPS + 50, compensate=False)
    m.advance(2.0)
    assert m.position_span(0.0045) is None               # fell out of the bounded history
    assert m.position_span(m._now) == (m.position, m.position)
    m.close()


def test_threaded_motor_history_is_on_the_monotonic_clock(pf, tmp_path):
    import time

    from device.lens.motor.sim import SimMotor

    m = SimMotor(limits=(0, 1000), position=100, speed=2000.0, acceleration=0.0)
    t0 = time.monotonic()
    m.move_to(200, compensate=False)
    assert m.wait(5.0)
    t1 = time.monotonic()
    assert m.position_span(t0, t1) == (100, 200)
    assert m.position_span(t1) == (200, 200) and m.still_since() <= t1
    assert m.position_span(t1 - 100.0) is None           # some other clock
    m.close()
    assert not m.energised
