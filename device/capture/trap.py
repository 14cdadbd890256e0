"""Trap focus: find the moment a subject passes through focus, once per pass.

A pure detector fed one focus value per frame (no I/O, no clocks), so it is tested on
plain number sequences. The rule starts from Magic Lantern's trap focus:
values are judged against the maximum of the recent history, and a peak needs a dip
below ``rearm_ratio`` of that maximum followed by a rise above ``fire_ratio`` of it.
Three refinements make it fire exactly once per pass:

* the dip must come after the previous peak closed, so wobbling around focus without
  leaving it does not fire again;
* the rise must be real: the value must reach ``trough / rearm_ratio``, so a slow
  monotonic fall (where the window maximum itself decays) can never open a peak;
* the peak is confirmed only once the value has stayed below ``fall_ratio`` of the best
  value seen while it was open for ``confirm_frames`` frames in a row; a value that climbs
  back above the best first means the pass had not reached its top (a glitch frame or a
  jolt on the way up, as in the real USB dongle sweep) and the peak stays open. The best
  frames are kept meanwhile and handed back, so the caller saves the sharpest frame
  rather than the one that confirmed the peak.

Decisions use the median of the last three values, so one noisy frame can neither
dip nor spike a peak into existence; the best frames are still chosen on raw values.

Frames can be marked ``eligible=False`` (the CNN did not call them sharp): they still
shape the curve but are never returned as candidates.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Optional


@dataclass(frozen=True)
class Candidate:
    value: float
    seq: int          # position in the stream of values fed to the detector
    payload: Any = None


@dataclass
class PeakEvent:
    """A confirmed peak. ``candidates`` are the best eligible frames, best first."""
    best_value: float
    history_max: float
    trough: float
    opened_at: int
    confirmed_at: int
    candidates: list = field(default_factory=list)


class TrapFocus:
    def __init__(self, fire_ratio: float = 0.8, rearm_ratio: float = 0.6,
                 fall_ratio: float = 0.95, history: int = 90, keep: int = 1,
                 confirm_frames: int = 1):
        if not 0 < rearm_ratio < fire_ratio < 1:
            raise ValueError("need 0 < rearm_ratio < fire_ratio < 1")
        if not 0 < fall_ratio < 1:
            raise ValueError("fall_ratio must lie in (0, 1)")
        if history < 3 or keep < 1 or confirm_frames < 1:
            raise ValueError("history must be >= 3, keep and confirm_frames >= 1")
        self.confirm_frames = confirm_frames
        self.fire_ratio, self.rearm_ratio, self.fall_ratio = fire_ratio, rearm_ratio, fall_ratio
        self.keep = keep
        # Sequence numbers and values side by side (increasing seqs), so the per-frame
        # max, min and "since the last peak" run in C, not a Python pass over 90 frames.
        self._hist_seq: deque = deque(maxlen=history)
        self._hist: deque = deque(maxlen=history)
        self._seq = 0
        self._closed_at = -1          # seq of the last confirmed peak: dips count after it
        self._open: Optional[dict] = None
        self._recent: deque = deque(maxlen=3)       # raw values for the median-of-3
        self._prev: Optional[Candidate] = None      # the frame before, if eligible

    # --- state, for stats and the overlay ---------------------------------------------
    @property
    def state(self) -> str:
        if self._open is not None:
            return "peak"
        return "armed" if self._trough() is not None else "waiting"

    def reset(self) -> None:
        self._hist_seq.clear()
        self._hist.clear()
        self._open = None
        self._recent.clear()
        self._prev = None
        self._closed_at = self._seq - 1

    def _history_max(self, value: float) -> float:
        return max(value, max(self._hist)) if self._hist else value

    def _trough(self) -> Optional[float]:
        """The dip since the last peak closed, if it went below rearm_ratio of the max."""
        if not self._hist:
            return None
        hmax = max(self._hist)
        first = bisect_right(self._hist_seq, self._closed_at)
        if first == len(self._hist):
            return None
        low = min(islice(self._hist, first, None))
        return low if low < self.rearm_ratio * hmax else None

    # --- one value ---------------------------------------------------------------------
    def update(self, value: float, *, eligible: bool = True, payload: Any = None) -> Optional[PeakEvent]:
        """Feed one frame's focus value; returns a ``PeakEvent`` when a peak is confirmed."""
        seq = self._seq
        self._seq += 1
        raw = float(value)
        event = None
        if raw != raw:  # NaN (a black frame): ignore, keep the state
            return None
        self._recent.append(raw)
        value = sorted(self._recent)[len(self._recent) // 2]
        cand = Candidate(raw, seq, payload) if eligible else None
        if self._open is not None:
            peak = self._open
            if value > peak["best"]:
                peak["best"] = value
            if cand is not None:
                self._offer(peak, cand)
            below = value < self.fall_ratio * peak["best"]
            peak["below"] = peak["below"] + 1 if below else 0
            if peak["below"] >= self.confirm_frames:
                event = self._confirm(seq)
        else:
            hmax = self._history_max(value)
            trough = self._trough()
            if (trough is not None and value >= self.fire_ratio * hmax
                    and value * self.rearm_ratio >= trough):
                self._open = {"best": value, "hmax": hmax, "trough": trough, "opened": seq, "cands": [],
                              "below": 0}
                # The median lags one frame: the frame before may be the sharpest one.
                for c in (self._prev, cand):
                    if c is not None:
                        self._offer(self._open, c)
        self._hist_seq.append(seq)
        self._hist.append(value)
        self._prev = cand
        return event

    def flush(self) -> Optional[PeakEvent]:
        """At the end of the stream: a peak whose fall had begun is confirmed, since no
        frame can bring it back now; one that had not started to fall is dropped."""
        if self._open is None or self._open["below"] == 0:
            return None
        return self._confirm(self._seq - 1)

    def _confirm(self, seq: int) -> PeakEvent:
        peak = self._open
        self._open = None
        self._closed_at = seq
        return PeakEvent(best_value=peak["best"], history_max=peak["hmax"], trough=peak["trough"],
                         opened_at=peak["opened"], confirmed_at=seq,
                         candidates=sorted(peak["cands"], key=lambda c: (-c.value, c.seq)))

    def _offer(self, peak: dict, cand: Candidate) -> None:
        cands = peak["cands"]
        if len(cands) < self.keep:
            cands.append(cand)
            return
        worst = min(range(len(cands)), key=lambda i: (cands[i].value, -cands[i].seq))
        if cand.value > cands[worst].value:   # ties keep the earlier frame
            cands[worst] = cand
