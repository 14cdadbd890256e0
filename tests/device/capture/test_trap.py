"""The pure trap-focus detector on plain value sequences."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.capture.trap import TrapFocus


def feed(trap, values, eligible=None):
    events = []
    for i, v in enumerate(values):
        ok = True if eligible is None else eligible[i]
        ev = trap.update(v, eligible=ok, payload=i)
        if ev is not None:
            events.append((i, ev))
    return events


def bump(n=40, centre=20, width=6, base=10.0, top=100.0):
    return [base + (top - base) * math.exp(-((i - centre) / width) ** 2) for i in range(n)]


def test_one_pass_fires_once_at_the_best_frame_after_the_fall():
    values = bump()
    events = feed(TrapFocus(), values)
    assert len(events) == 1
    at, ev = events[0]
    assert ev.candidates[0].payload == 20          # the sharpest frame, not the confirming one
    assert at > 20                                  # confirmed only once the value fell
    assert values[at] < 0.95 * values[20]


def test_slow_monotonic_fall_never_fires_even_after_the_window_forgets_the_top():
    values = [100.0 * 0.99 ** i for i in range(400)]
    assert feed(TrapFocus(history=30), values) == []


def test_noise_without_a_dip_never_fires():
    import numpy as np

    rng = np.random.default_rng(1)
    values = list(50 + 5 * rng.standard_normal(500))
    assert feed(TrapFocus(), values) == []


def test_two_passes_through_focus_give_two_captures_and_wobble_gives_one():
    values = bump() + bump()
    assert len(feed(TrapFocus(), values)) == 2
    # Near focus the user wobbles (never below 60 % of the peak): still one pass.
    wobble = bump()[:24] + [80, 92, 85, 95, 88, 70] + bump()[26:]
    assert len(feed(TrapFocus(), wobble)) == 1


def test_peak_not_called_sharp_yields_no_candidates():
    values = bump()
    events = feed(TrapFocus(), values, eligible=[False] * len(values))
    assert len(events) == 1 and events[0][1].candidates == []
    # Only frames the CNN calls sharp can be chosen, even if a blurrier one scored higher.
    eligible = [i != 20 for i in range(len(values))]
    (_, ev), = feed(TrapFocus(), values, eligible=eligible)
    assert ev.candidates[0].payload in (19, 21)


def test_keep_returns_the_best_k_frames_best_first():
    (_, ev), = feed(TrapFocus(keep=3), bump())
    assert [c.payload for c in ev.candidates][0] == 20
    assert sorted(c.payload for c in ev.candidates) == [19, 20, 21]


def test_nan_is_ignored_and_bad_settings_are_refused():
    values = bump()
    values[5] = float("nan")
    assert len(feed(TrapFocus(), values)) == 1
    with pytest.raises(ValueError):
        TrapFocus(fire_ratio=0.5, rearm_ratio=0.6)


@settings(max_examples=40, deadline=None)
@given(centre=st.integers(15, 60), width=st.floats(2.0, 12.0), base=st.floats(62.0, 95.0),
       noise=st.floats(0.0, 0.01), seed=st.integers(0, 10_000))
def test_a_shallow_bump_that_never_dips_below_60_percent_never_fires(centre, width, base, noise, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    values = [v * (1 + noise * rng.standard_normal()) for v in bump(centre + 40, centre, width, base, 100.0)]
    assert feed(TrapFocus(), values) == []      # no pass through focus to detect


@settings(max_examples=60, deadline=None)
@given(centre=st.integers(15, 60), width=st.floats(2.0, 12.0), base=st.floats(1.0, 40.0),
       noise=st.floats(0.0, 0.01), seed=st.integers(0, 10_000))
def test_any_single_pass_fires_exactly_once_near_the_top(centre, width, base, noise, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    n = centre + 40
    values = [v * (1 + noise * rng.standard_normal()) for v in bump(n, centre, width, base, 100.0)]
    events = feed(TrapFocus(), values)
    assert len(events) == 1
    best = events[0][1].candidates[0].payload
    assert values[best] >= 0.95 * max(values)


def _held(values, hold=5):
    return [v for v in values for _ in range(hold)]


# The real USB dongle sweep's text region (focus / its top, frames 0-20): frame 10 is a
# glitch on the way up, held 5 frames as the capture benchmark plays it.
USB_WAY_UP = [0.09, 0.09, 0.10, 0.11, 0.12, 0.14, 0.16, 0.20, 0.26, 0.34, 0.06, 0.46, 0.61,
              0.78, 0.92, 1.0, 0.98, 0.83, 0.58, 0.37, 0.06]


def test_a_glitch_on_the_way_up_does_not_confirm_a_peak_when_the_fall_must_last():
    quick = feed(TrapFocus(confirm_frames=1), _held(USB_WAY_UP))
    assert [ev.candidates[0].payload // 5 for _, ev in quick][0] == 9      # the old rule: fooled
    (at, ev), = feed(TrapFocus(confirm_frames=8), _held(USB_WAY_UP))
    assert ev.candidates[0].payload // 5 == 15                             # the real top
    assert at >= 17 * 5 + 7                                                # 8 frames below the top


def test_a_fall_shorter_than_confirm_frames_keeps_the_peak_open():
    values = [10] * 5 + [50, 100, 100] + [60] * 3 + [100, 100, 60] + [10] * 10
    assert feed(TrapFocus(confirm_frames=3), values)[0][0] == 11       # 3 frames below: done
    (at, ev), = feed(TrapFocus(confirm_frames=4), values)               # back up first: open
    assert at == 17 and ev.candidates[0].payload == 6


def test_confirm_frames_must_be_positive():
    with pytest.raises(ValueError):
        TrapFocus(confirm_frames=0)


def test_at_the_end_of_the_stream_a_falling_peak_is_confirmed_and_a_rising_one_dropped():
    trap = TrapFocus(confirm_frames=8)
    assert feed(trap, [10] * 5 + [50, 100, 100, 60, 40, 30]) == []   # fell, but not for 8 frames
    ev = trap.flush()
    assert ev is not None and ev.candidates[0].payload == 6
    assert trap.flush() is None                                     # once
    rising = TrapFocus(confirm_frames=8)
    feed(rising, [10] * 5 + [50, 100])
    assert rising.flush() is None
