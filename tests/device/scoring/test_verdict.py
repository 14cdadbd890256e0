"""The live verdict: the focus net and the focus curve of the current pass together."""
from __future__ import annotations

import pytest

from device.config.verdict import VerdictConfig
from device.errors import ConfigError
from device.loop.result import CnnVerdict
from device.scoring.verdict import FocusCurve, fuse

CFG = VerdictConfig()


def _net(p_sharp: float, certainty: float, label: str | None = None) -> CnnVerdict:
    label = label or ("sharp" if p_sharp >= 0.5 else "defocus")
    rest = 1.0 - p_sharp
    return CnnVerdict(label=label, sharp_prob=p_sharp,
                      probs={"sharp": p_sharp, "defocus": rest * 0.8, "motion": rest * 0.2},
                      blur_px=1.0, certainty=certainty, tiles=8)


def _play(values, dt=0.1, cfg=CFG):
    curve = FocusCurve(cfg)
    return [curve.update(v, i * dt) for i, v in enumerate(values)]


# A pass through focus: up to 10, down to 1, then back up.
PASS = [1, 2, 4, 7, 10, 7, 4, 2, 1, 2, 4, 7, 10]


def test_the_curve_has_no_say_until_it_has_gone_over_its_top():
    ev = _play(PASS)
    assert [e.over_top for e in ev[:6]] == [False] * 5 + [True]
    assert all(e.weight(CFG) == 0.0 for e in ev[:5])      # "the best so far" is no evidence
    assert ev[5].weight(CFG) == CFG.curve_weight            # rose 10x >= strong_rise
    assert ev[8].ratio == pytest.approx(0.1) and ev[8].sharp_prob(CFG) < 0.05
    assert ev[12].ratio == 1.0 and ev[12].sharp_prob(CFG) > 0.99


def test_a_small_rise_carries_a_small_weight():
    ev = _play([5, 6, 5, 4.8, 5.9])
    assert ev[-1].over_top and 0 < ev[-1].weight(CFG) < 0.5 * CFG.curve_weight


def test_the_window_forgets_old_frames_and_a_clock_going_back_starts_afresh():
    cfg = VerdictConfig(window_s=1.0)
    curve = FocusCurve(cfg)
    curve.update(100.0, 0.0)
    late = curve.update(10.0, 5.0)          # the 100 is 5 s old: gone
    assert late.ratio == 1.0 and late.rise == 1.0
    curve.update(1.0, 5.1)
    back = curve.update(50.0, 0.0)
    assert back.ratio == 1.0 and back.rise == 1.0
    assert curve.update(float("nan"), 0.1) is None



def _reference_evidence(history, cfg):
    """The curve's evidence by its definition, from the whole (t, value) history."""
    t, value = history[-1]
    start = 0
    for i in range(len(history) - 1, 0, -1):
        if history[i][0] < history[i - 1][0]:
            start = i                       # the clock went back: the curve starts again
            break
    window = [(a, v) for a, v in history[start:] if a >= t - cfg.window_s][-cfg.window_frames:]
    seq = [v for _, v in window]
    top_i = max(range(len(seq)), key=seq.__getitem__)
    top, low = seq[top_i], min(seq)
    if top <= 0:
        return None
    over = any(v < cfg.fall_ratio * top for v in seq[top_i + 1:])
    return (value / top, top / low if low > 0 else float("inf"), over)


def test_the_curve_matches_its_definition_on_a_real_focus_sweep():
    """The real PCB sweep's focus values, played forward, back and again with ties, time
    gaps that age frames out of the window, a frame cap, and the clock going back: the
    windowed evidence is exactly what its definition gives."""
    import cv2

    from device.scoring.measures import focus_value
    from tests.conftest import pcb_sweep_paths

    values = [focus_value(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)) for p in pcb_sweep_paths()]
    seq = values + values[::-1] + [values[3]] * 4 + values + [0.0] + values
    cfg = VerdictConfig(window_s=2.0, window_frames=6)
    curve, history, t = FocusCurve(cfg), [], 0.0
    for i, v in enumerate(seq):
        t = 0.0 if i == len(seq) // 2 else t + (0.9 if i % 7 == 0 else 0.1)
        history.append((t, v))
        ev = curve.update(v, t)
        ref = _reference_evidence(history, cfg)
        got = None if ev is None else (ev.ratio, ev.rise, ev.over_top)
        assert got == ref, (i, got, ref)

def test_a_confident_net_that_calls_the_top_of_a_real_pass_blurred_is_outvoted():
    top = _play(PASS)[-1]
    v = fuse(_net(0.02, certainty=0.95), top, CFG)
    assert v.label == "sharp" and v.sharp_prob > 0.5 and v.decided_by == "net_and_curve"


def test_an_unsure_net_defers_to_the_curve():
    down = _play(PASS)[8]                   # well down the curve after its top
    v = fuse(_net(0.9, certainty=0.1), down, CFG)
    assert v.decided_by == "curve" and v.label == "defocus" and v.sharp_prob < 0.1


def test_without_a_curve_the_net_decides_and_without_either_it_says_so():
    rising = _play(PASS)[3]
    v = fuse(_net(0.8, certainty=0.7), rising, CFG)
    assert v.decided_by == "net" and v.label == "sharp" and v.sharp_prob == pytest.approx(0.8)
    v = fuse(_net(0.8, certainty=0.1), rising, CFG)
    assert v.decided_by == "net_unsure" and v.sharp_prob == 0.8
    assert fuse(None, None, CFG) is None


def test_a_region_without_detail_stays_flat_whatever_the_curve_says():
    v = fuse(_net(0.0, certainty=1.0, label="flat"), _play(PASS)[-1], CFG)
    assert v.label == "flat" and v.decided_by == "no_detail"


def test_a_net_called_sharp_but_outvoted_takes_its_likelier_blur_kind():
    down = _play(PASS)[8]
    net = CnnVerdict("sharp", 0.6, {"sharp": 0.6, "defocus": 0.1, "motion": 0.3}, 1.0, 0.5, 8)
    assert fuse(net, down, CFG).label == "motion"


@pytest.mark.parametrize("bad", [dict(window_s=0), dict(sharp_ratio=1.0), dict(strong_rise=1.0),
                                 dict(fall_ratio=0), dict(curve_weight=-1), dict(unsure_below=2)])
def test_bad_verdict_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        VerdictConfig(**bad)
