"""The optics inspector live (issue 17): the same analysis as ``focus-assist inspect``
(``device.optics.inspect``: its peak finder, plane and bowl fits and verdict), run on the
per-tile focus maps the loop already computes, after a pass through focus.

A pass is either a full autofocus scan (from the frame the autofocus starts scanning to
the frame it reports focus) or the ring turned through focus by hand: the loop's own
trap-focus detector (``device.capture.trap``, the one capture-when-sharp uses) confirms a
peak, and the pass closes once the focus has fallen to ``FALL`` (35%) of that peak, taken
back to where it last was that low before the peak.

Autofocus samples are unevenly spaced in lens position (a coarse sweep, then fine steps
back over the peak), so when the run knows where the lens is (the motor, or the simulated
lens's position while each frame was exposed) the curves are put on an even grid of lens
positions first (``even_positions``); without one, frames are taken in time order, which
is lens order for one turn of the ring.

The sink only records (a tile map is a few dozen floats); the analysis runs when a pass
ends and ``[inspect] enabled`` is set, or when ``analyse()`` is called (``POST
/api/inspect``), and takes milliseconds (``bench/bench_inspect.py``).
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np

from device.capture.trap import TrapFocus
from device.config.inspect import InspectConfig
from device.errors import InputError
from device.lens.search import FOCUSED, SCANNING
from device.loop.sink import Sink

log = logging.getLogger(__name__)

FALL = 0.35           # a hand pass spans the frames above 35% of its peak: each region's
                      # curve then has tails on both sides for the peak finder to judge
NO_PASS = ("no pass through focus yet: turn the ring through focus, or run a full autofocus")


@dataclass(frozen=True)
class Pass:
    """One pass through focus: the tile maps (frames, rows, cols) and, when known, the
    lens position of each frame."""
    kind: str                           # "autofocus" | "hand"
    maps: np.ndarray
    positions: Optional[tuple] = None

    @property
    def frames(self) -> int:
        return int(self.maps.shape[0])


def regrid(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(frames, r, c) tile maps -> (frames, rows, cols) region values, each the mean of the
    tiles it covers (area resampling); InputError when the grid is finer than the tiles."""
    n, r, c = maps.shape
    rows, cols = grid
    if (r, c) == (rows, cols):
        return maps.astype(np.float64)
    if rows > r or cols > c:
        raise InputError(f"inspect.grid {rows}x{cols} is finer than the scorer's {r}x{c} tile "
                         "map (scoring.tile_grid)")
    return np.stack([cv2.resize(m.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA)
                     for m in maps]).astype(np.float64)


def analyse_pass(p: Pass, grid: tuple[int, int]) -> dict:
    """``inspect --json``'s object for one pass, with ``"pass"`` saying what was analysed."""
    # Imported on the first pass, not at start-up: the analysis is 1.1 MB of RSS that a
    # run which never completes a pass (most of them) does not need (issue 20).
    from device.optics.inspect import even_positions, inspect_curves
    curves = regrid(p.maps, grid)
    positions = None
    if p.positions is not None:
        curves, even = even_positions(curves, p.positions)
        positions = even.tolist()
    ins = inspect_curves(curves, lens_positions=positions)
    out = ins.to_json()
    out["pass"] = {"kind": p.kind, "frames": p.frames,
                   "lens_range": None if p.positions is None
                   else [float(np.nanmin(p.positions)), float(np.nanmax(p.positions))],
                   "samples": "lens positions, evenly resampled" if positions else "frames"}
    return out


class LiveInspector(Sink):
    """Records tile maps, cuts them into passes, and keeps the last pass and result."""

    def __init__(self, cfg: InspectConfig = InspectConfig(), *, autofocus=None,
                 lens_position: Optional[Callable[[], float]] = None):
        self.cfg = cfg
        self.autofocus = autofocus
        self._lens = lens_position
        self._buf: deque = deque(maxlen=cfg.max_frames)    # (focus, tile map, position)
        self._trap = TrapFocus(fire_ratio=0.8, rearm_ratio=0.6, fall_ratio=0.95,
                               history=min(cfg.max_frames, 900))
        self._af_prev = None
        self._af_start: Optional[int] = None   # frames in the buffer when the scan began
        self._seen = 0
        self._cut = 0                          # frames seen when the last pass closed
        self._peak: Optional[float] = None     # a hand pass's confirmed peak, waiting to close
        self._lock = threading.Lock()
        self.last_pass: Optional[Pass] = None
        self._result: Optional[dict] = None
        self._reason = NO_PASS

    # --- the sink ---------------------------------------------------------------------
    def on_frame(self, frame, result) -> None:
        tiles = result.tile_map
        if tiles is None or tiles.ndim != 2:
            return
        pos = float(self._lens()) if self._lens is not None else None
        self._buf.append((float(result.focus), np.array(tiles, np.float32), pos))
        self._seen += 1
        if self._autofocus_pass():
            return
        if self.cfg.by_hand:
            self._hand_pass(float(result.focus))

    def _autofocus_pass(self) -> bool:
        """True while the autofocus scans (its frames are not a hand pass)."""
        af = self.autofocus
        if af is None:
            return False
        state, prev = af.state, self._af_prev
        self._af_prev = state
        if state == SCANNING and prev != SCANNING:
            self._af_start = self._seen - 1
            self._peak = None
            self._trap.reset()
        if prev == SCANNING and state != SCANNING:
            start, self._af_start = self._af_start, None
            if state == FOCUSED and self.cfg.after_autofocus and start is not None:
                self._close_pass("autofocus", self._seen - start)
            return False
        return state == SCANNING

    def _hand_pass(self, focus: float) -> None:
        event = self._trap.update(focus)
        if event is not None:
            self._peak = event.best_value
        if self._peak is None or focus > FALL * self._peak:
            return
        peak, self._peak = self._peak, None
        since = min(self._seen - self._cut, len(self._buf))
        values = [b[0] for b in list(self._buf)[-since:]]
        top = int(np.argmax(values))
        start = top
        while start > 0 and values[start] > FALL * peak:
            start -= 1
        self._close_pass("hand", len(values) - start)

    def _close_pass(self, kind: str, frames: int) -> None:
        from device.optics.inspect import MIN_FRAMES
        self._cut = self._seen
        recs = list(self._buf)[-frames:] if frames > 0 else []
        if len(recs) < max(self.cfg.min_frames, MIN_FRAMES):
            log.info("inspect: a %s pass of %d frames is too short to analyse", kind, len(recs))
            return
        positions = tuple(r[2] for r in recs) if self._lens is not None else None
        p = Pass(kind, np.stack([r[1] for r in recs]), positions)
        with self._lock:
            self.last_pass = p
            self._result, self._reason = None, f"a {kind} pass of {p.frames} frames, not analysed yet"
        if self.cfg.enabled:
            self.analyse()

    # --- what the web page asks -------------------------------------------------------
    def analyse(self, grid: Optional[tuple[int, int]] = None) -> dict:
        """Analyse the last pass (on ``grid``, default ``[inspect] grid``) and keep it."""
        with self._lock:
            p = self.last_pass
        if p is None:
            return {"result": None, "reason": NO_PASS}
        try:
            out = analyse_pass(p, grid or self.cfg.grid)
        except InputError as exc:
            with self._lock:
                self._result, self._reason = None, str(exc)
            return {"result": None, "reason": str(exc)}
        log.info("inspect (%s pass, %d frames): %s", p.kind, p.frames, out["summary"])
        with self._lock:
            self._result = out
        return out

    def last(self) -> dict:
        """The last result (``inspect --json``'s object), or ``{"result": null, "reason"}``."""
        with self._lock:
            return self._result if self._result is not None else {"result": None, "reason": self._reason}

    def stats(self) -> dict:
        r = self.last()
        return {"inspect": r.get("verdict")}
