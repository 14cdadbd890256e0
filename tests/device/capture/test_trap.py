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
