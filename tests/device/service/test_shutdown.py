"""The bounded stop (hardening cases F6 and F18): a close step that never returns is
abandoned, the steps after it still run, and the budget is shared in order."""
from __future__ import annotations

import threading

from device.service.shutdown import BoundedStop


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_f6_f18_a_step_that_never_returns_is_abandoned_and_the_next_still_runs():
    release, ran = threading.Event(), []
    stop = BoundedStop(0.3)
    try:
        stuck = stop.run([("the source", release.wait)], reserve_s=0.1)
        stop.run([("the sinks", lambda: ran.append("sinks"))])
    finally:
        release.set()        # let the abandoned thread end with the test
    assert [o.done for o in stuck] == [False]
    assert stop.abandoned() == ["the source"]
    assert ran == ["sinks"] and stop.outcomes[-1].done


def test_the_budget_is_shared_in_order_and_reserves_are_kept(caplog):
    clock = FakeClock()
    stop = BoundedStop(1.3, clock=clock)

    state = stop.run([("the defect map", lambda: None), ("the motor", lambda: None)],
                     reserve_s=0.4)
    clock.t += 0.4           # as if saving the state took 0.4 s
    capture = stop.run([("the capture queue", lambda: None)], reserve_s=0.4)
    last = stop.run([("the source", lambda: None)])
    # Both state steps started together with everything but the reserve.
    assert [o.allowed_s for o in state] == [0.9, 0.9] and all(o.done for o in state)
    assert capture[0].allowed_s == 0.5          # 1.3 - 0.4 spent - 0.4 kept back
    assert last[0].allowed_s == 0.9             # the rest of the budget
    assert stop.abandoned() == [] and "did not finish" not in caplog.text


def test_a_failing_step_is_logged_and_does_not_stop_the_others(caplog):
    def broken():
        raise OSError(28, "No space left on device")

    stop = BoundedStop(2.0)
    out = stop.run([("the defect map", broken), ("the motor", lambda: None)])
    assert [o.done for o in out] == [True, True]
    assert out[0].error == "OSError: [Errno 28] No space left on device" and out[1].error is None
    assert "stopping: the defect map failed: OSError" in caplog.text


def test_max_s_caps_a_step_below_the_budget():
    clock = FakeClock()
    stop = BoundedStop(1.3, clock=clock)
    assert stop.run([("the frame loop", lambda: None)], max_s=0.4)[0].allowed_s == 0.4
    clock.t += 2.0
    assert stop.remaining() == 0.0
    assert stop.run([("late", lambda: None)])[0].allowed_s == 0.0
