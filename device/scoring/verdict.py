"""The sharpness verdict the live loop reports: the focus net and the focus curve together.

The net can say "sharp" about a scene it has never seen, but on content unlike its
training (a microscope at full sensor resolution, a barcode) it can be confidently wrong.
The focus curve of the current pass cannot be fooled by content: once the user has turned
the ring over the top, a frame near the top of the curve is the sharpest the optics give.
But the curve only knows that after the top has been passed; on the way up every frame is
"the best so far". So:

* the curve's weight is zero until the recent curve has gone over its top (fell below
  ``fall_ratio`` of its highest value after reaching it) and grows with how far it rose
  (``strong_rise`` times is full weight);
* the net's weight is its certainty, zero below ``unsure_below`` ("I don't know", as for
  content unlike its training) and zero when the region has no detail (``flat``);
* the verdict's p(sharp) is the weighted mean of the two in log-odds, so a full-weight
  curve (``curve_weight``, default 2) outvotes a fully certain net.

``decided_by`` says which evidence spoke. The numbers are fitted on the three real sweeps
beside the project (docs/models.md, "Verdict on real sweeps").
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from typing import Optional

from device.config.verdict import VerdictConfig
from device.loop.result import CnnVerdict, Verdict

NET, CURVE, BOTH, NET_UNSURE, NO_DETAIL = "net", "curve", "net_and_curve", "net_unsure", "no_detail"
_P_CLIP = 1e-4


@dataclass(frozen=True)
class CurveEvidence:
    """Where the current value sits on the recent focus curve."""
    ratio: float            # value / highest value of the window (0..1)
    rise: float             # highest / lowest value of the window
    over_top: bool          # the curve fell below fall_ratio of its top after reaching it

    def weight(self, cfg: VerdictConfig) -> float:
        if not self.over_top or self.rise <= 1.0:
            return 0.0
        return cfg.curve_weight * min(1.0, math.log(self.rise) / math.log(cfg.strong_rise))

    def sharp_prob(self, cfg: VerdictConfig) -> float:
        return _sigmoid((self.ratio - cfg.sharp_ratio) / cfg.ratio_scale)


class FocusCurve:
    """The recent focus values of one region, bounded in time and in frames. No clock of
    its own: it is fed each frame's timestamp."""

    def __init__(self, cfg: VerdictConfig = VerdictConfig()):
        self.cfg = cfg
        # Sliding-window maximum and minimum as monotonic queues of (index, value): O(1)
        # per frame on the frame thread, where a pass over the 600-frame window was not.
        # _top keeps the first of equal values (the top is its earliest frame); _low's
        # entries are the minima of what follows each, so the first entry after the top
        # is the lowest value since it.
        self._times: deque = deque()
        self._top: deque = deque()
        self._low: deque = deque()
        self._n = 0

    def reset(self) -> None:
        self._times.clear()
        self._top.clear()
        self._low.clear()

    def update(self, value: float, t: float) -> Optional[CurveEvidence]:
        """Add one frame's value; the evidence for it, None while there is no curve."""
        if not math.isfinite(value) or value < 0:
            return None
        times, top_q, low_q = self._times, self._top, self._low
        if times and t < times[-1]:
            self.reset()                  # the clock went back: a new source or a replay
        value = float(value)
        i = self._n
        self._n += 1
        times.append(t)
        while top_q and top_q[-1][1] < value:
            top_q.pop()
        top_q.append((i, value))
        while low_q and low_q[-1][1] >= value:
            low_q.pop()
        low_q.append((i, value))
        while len(times) > self.cfg.window_frames or times[0] < t - self.cfg.window_s:
            times.popleft()
        first = self._n - len(times)      # the index of the oldest frame in the window
        while top_q[0][0] < first:
            top_q.popleft()
        while low_q[0][0] < first:
            low_q.popleft()
        top_i, top = top_q[0]
        low = low_q[0][1]
        if top <= 0:
            return None
        k = bisect_right(low_q, top_i, key=_index)
        over = k < len(low_q) and low_q[k][1] < self.cfg.fall_ratio * top
        rise = top / low if low > 0 else float("inf")
        return CurveEvidence(ratio=value / top, rise=rise, over_top=over)


def _index(entry: tuple) -> int:
    return entry[0]


def fuse(net: Optional[CnnVerdict], curve: Optional[CurveEvidence],
         cfg: VerdictConfig = VerdictConfig()) -> Optional[Verdict]:
    """One frame's verdict from the net's (None: no net) and the curve's (None: none yet)."""
    if net is None and curve is None:
        return None
    if net is not None and net.label == "flat":
        return Verdict("flat", 0.0, NO_DETAIL, net_weight=0.0, curve_weight=0.0,
                       curve_ratio=None if curve is None else curve.ratio)
    w_n = 0.0
    if net is not None and net.certainty >= cfg.unsure_below:
        w_n = float(net.certainty)
    w_c = curve.weight(cfg) if curve is not None else 0.0
    ratio = None if curve is None else round(curve.ratio, 4)
    if w_n + w_c <= 0:
        if net is None:
            return None
        return Verdict(net.label, float(net.sharp_prob), NET_UNSURE, 0.0, 0.0, ratio)
    logit = 0.0
    if w_n:
        logit += w_n * _logit(net.sharp_prob)
    if w_c:
        logit += w_c * _logit(curve.sharp_prob(cfg))
    p = _sigmoid(logit / (w_n + w_c))
    by = BOTH if (w_n and w_c) else (NET if w_n else CURVE)
    return Verdict(_label(p, net), p, by, round(w_n, 3), round(w_c, 3), ratio)


def _label(p: float, net: Optional[CnnVerdict]) -> str:
    if p >= 0.5:
        return "sharp"
    if net is not None and net.label in ("defocus", "motion"):
        return net.label
    if net is not None:
        # the net called it sharp but the curve outvoted it: its more likely blur kind
        probs = net.probs
        return "motion" if probs.get("motion", 0.0) > probs.get("defocus", 0.0) else "defocus"
    return "defocus"


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _logit(p: float) -> float:
    p = min(1.0 - _P_CLIP, max(_P_CLIP, float(p)))
    return math.log(p / (1.0 - p))
