"""Contrast-detect autofocus: a frame-loop sink that drives a ``device.lens.motor.Motor``.

The search (``device.lens.search.contrast_search``) is a generator: it yields what it wants to know,
``("measure", position)`` or ``("go", position)``, and is sent back the focus value there.
The sink (``Autofocus``) does the waiting: it moves the motor (backlash-safe), drops the
frames exposed while the lens moved plus ``settle_frames`` more (a camera's statistics lag
the lens), averages ``average_frames`` frames, and resumes the search. So the search reads
like the algorithm, and ``on_frame`` never blocks: motion runs on the motor's own thread.

The search:

1. Sweep (``[autofocus] sweep = true``, the default): from where the lens is, one
   continuous move towards the larger part of the travel, measured on every frame while
   the lens moves (the frame shows the lens where it was ``settle_frames`` earlier), so a
   sample costs one frame instead of a stop, a settle frame and a measure. Once the
   measure has risen e^1 above the sweep's lowest value while moving in the approach
   direction, the peak is near and the sweep creeps on at one fine step a frame; it stops
   once the measure falls below ``stop_ratio`` of the best past the best (libcamera's
   contrast ratio), or once a creep has bracketed the best at fine spacing and the
   measure has fallen by ``min_rise`` on both sides, or turns round at a limit. If the
   sweep crossed the peak at full speed in the approach direction, its consistent
   samples bracket the peak at coarse spacing and the lens goes straight to the vertex
   of their V (``device.lens.search.coarse_vertex``); if it crossed it against the
   approach direction (or that bracket is not trustworthy), the lens re-approaches to
   two fine steps before the fitted peak, in the approach direction, and the first
   frame there, matched against the crossing sweep's V, places the peak
   (``device.lens.search.flank_peak``); when that match is not trusted it creeps
   through the peak from there. With ``sweep = false``, the older scan: coarse steps,
   stop, settle and measure at each.
2. Samples fitted are only those with the gear play taken up on the usual side: a
   frame-clocked sweep in the approach direction once it has travelled the backlash
   overshoot (or started approached), and every stop-and-measure position (each reached
   by a final approach in the motor's approach direction). A motor on its own thread
   (a real Pi) keeps a history of its steps, and a frame's timestamp (its exposure, on
   the motor's clock) gives where the lens was: those samples are fitted as a
   frame-clocked one's if the lens moved at most half a fine step during the exposure.
   Without a timestamp on that clock the position is known only to about a frame, and
   its sweep samples steer the search but are never fitted.
3. The peak is fitted on log(focus) through the best consistent sample and its two
   neighbours. Once they are within two fine steps, a parabola, and that is the answer.
   Across coarse spacing the measure is cusp-shaped, so a symmetric V is fitted (or a
   hyperbola once four samples lie near the top; on the simulated lens the V is 2-4x
   more accurate than a parabola at coarse spacing) and the AF measures at its vertex,
   or one fine step beside a sample the vertex lands on, until the best sample is
   bracketed at fine spacing; then the final approach, backlash-safe like every move.
4. "focused" only if the best sample beats samples on both sides by ``min_rise``:
   the measure truly rose and fell. Otherwise (a flat, featureless scene; a peak at a
   travel limit; a timeout) "failed", and the lens goes back to where it started.

Modes: one-shot (``trigger()``, from the CLI, a GPIO button or the web viewfinder) and
continuous (re-trigger once the focus value has moved beyond ``retrigger_ratio`` of its
value at lock and then held still for ``retrigger_delay`` frames, as libcamera does).
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from device.common.roi import Roi
from device.config import AutofocusConfig
from device.lens.button import open_button
from device.lens.search import (_FLOOR, FAILED, FOCUSED, IDLE, SCANNING, Outcome, Request,
                                contrast_search)
from device.loop.result import FrameResult
from device.loop.sink import Sink
from device.scoring.measures import focus_value

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutofocusStatus:
    """``/api/status`` shows it under ``autofocus``; ``run --stats`` under ``af``."""
    state: str                      # idle | scanning | focused | failed
    reason: str
    frames: int                     # frames of the last run until it ended
    moves: int
    position: int                   # motor steps
    mode: str                       # once | continuous
    runs: int
    lens: dict = field(default_factory=dict)   # the simulated lens's truth (sim motor only)

    def to_json(self) -> dict:
        out = {k: getattr(self, k) for k in ("state", "reason", "frames", "moves", "position",
                                             "mode", "runs")}
        out.update(self.lens)
        return out


class Autofocus(Sink):
    """A frame-loop sink running contrast-detect AF on ``result.focus``.

    ``trigger()`` may be called from any thread (web handler, GPIO button callback); all
    state changes happen on the loop thread inside ``on_frame``. With a frame-clocked
    motor (the simulated lens), ``on_frame`` also advances the motor by one frame period.
    """

    def __init__(self, motor, cfg: AutofocusConfig = AutofocusConfig(), *, roi=None,
                 start: bool = False, owns_motor: bool = False, pin_factory=None,
                 frame_period: float = 1.0 / 30, search: Optional[Callable] = None,
                 measure: Optional[Callable] = None, exposure: float = 0.0,
                 position_history: bool = True):
        self.motor = motor
        # With a motor on its own thread, a sweep frame's lens position is looked up in
        # the motor's step history at the frame's timestamp (its exposure, on the motor's
        # clock) over ``exposure`` seconds; ``position_history=False`` (or a timestamp on
        # another clock) falls back to the position seen at the frame ``settle`` before.
        self.exposure = max(float(exposure), 0.0)
        self.position_history = position_history
        self._stamp: Optional[float] = None
        self._sweep_t0 = 0.0
        # ``search(p0, limits, coarse, fine, first_step)`` -> a generator speaking the
        # protocol of ``contrast_search``; other strategies plug in here (the benchmark's
        # full sweep and libcamera-style scan run through this same sink).
        self._search_factory = search
        # ``measure(frame, result)`` -> the value the search is sent (default: the
        # contrast ``result.focus``); the star autofocus sends the median star size.
        self._measure = measure
        self.cfg = cfg
        self.roi: Optional[Roi] = tuple(roi) if roi else None
        self.owns_motor = owns_motor
        self.frame_period = frame_period
        self.state = IDLE
        self.reason = "waiting for a trigger"
        self.frames = 0            # frames from the AF start until focused (or failed)
        self.moves = 0             # moves the AF commanded in its last run
        self.runs = 0
        # Frames of the last run by what they were spent on (see ``_phase``): the
        # benchmark's account of where autofocus time goes.
        self.phase_frames: dict[str, int] = {}
        self.start_position: Optional[int] = None
        self._trigger: Optional[str] = "start" if start else None
        self._search = None
        self._request: Optional[Request] = None
        self._values: list[float] = []
        self._idle_run = 0
        self._last_steps = motor.steps
        self._seen: deque = deque(maxlen=8)   # motor position at each frame, newest last
        self._sweep_from: Optional[int] = None
        self._sweep_taken_up = False
        # With a motor on its own thread we only know to the frame when it stopped, so
        # one more frame is dropped than the camera's lag needs.
        self._settle = cfg.settle_frames + (0 if motor.frame_clocked else 1)
        self._ref: Optional[float] = None
        self._prev: Optional[float] = None
        self._changed = False
        self._stable = 0
        self._button = None
        if cfg.button_pin is not None:
            self._button = open_button(cfg.button_pin, "autofocus.button_pin", pin_factory)
            self._button.when_pressed = lambda: self.trigger("button")

    # --- control (any thread) ---------------------------------------------------------
    def trigger(self, reason: str = "triggered") -> None:
        """Start a one-shot AF at the next frame (ignored while one is running)."""
        self._trigger = reason

    def cancel(self, reason: str = "stopped") -> None:
        """Stop a running AF at the next frame and leave the lens where it is (a person
        pressed stop: going back to the start would be a move they did not ask for)."""
        self._cancel = reason

    _cancel: Optional[str] = None

    # --- the sink interface ----------------------------------------------------------
    def on_frame(self, frame, result: FrameResult) -> None:
        if self._closed:
            return
        # A costly measure (stars) is only taken while it is used.
        wanted = self._measure is None or self.state == SCANNING or self._trigger is not None \
            or self.cfg.mode == "continuous"
        value = self._value(frame, result) if wanted else float("nan")
        steps = self.motor.steps
        moved = self.motor.busy or steps != self._last_steps
        self._last_steps = steps
        self._idle_run = 0 if moved else self._idle_run + 1
        self._seen.append(self.motor.position)
        self._stamp = getattr(frame, "timestamp", None)
        if self._cancel is not None:
            why, self._cancel, self._trigger = self._cancel, None, None
            if self.state == SCANNING:
                self._search.close()
                self.motor.stop()
                self._end(IDLE, why)
        if self._trigger is not None:
            why, self._trigger = self._trigger, None
            if self.state != SCANNING:
                self._begin(why, result)
        if self.state == SCANNING:
            self.frames += 1
            phase = self._phase()
            self.phase_frames[phase] = self.phase_frames.get(phase, 0) + 1
            try:
                self._drive(value)
            except Exception:   # a motor fault: report, never kill the loop
                log.exception("autofocus stopped by an error")
                self._end(FAILED, "motor error (see the log)")
            if self.state == SCANNING and self.frames >= self.cfg.timeout_frames:
                self._abort(f"timed out after {self.frames} frames")
        elif self.cfg.mode == "continuous" and self.state in (FOCUSED, FAILED):
            self._watch(value, moved)
        if self.motor.frame_clocked and not self.motor.closed:
            self.motor.advance(self.frame_period)

    def status(self) -> AutofocusStatus:
        return AutofocusStatus(state=self.state, reason=self.reason, frames=self.frames,
                               moves=self.moves, position=self.motor.position, mode=self.cfg.mode,
                               runs=self.runs, lens=self.motor.truth())

    def stats(self) -> dict:
        return {"af": self.status().to_json()}

    def overlay_text(self) -> str:
        return f"AF {self.state}" + (f" @{self.motor.position}" if self.state == FOCUSED else "")

    def _close(self) -> None:
        if self._button is not None:
            self._button.close()
        try:
            self.motor.stop()
        finally:
            if self.owns_motor:
                self.motor.close()

    # --- internals ---------------------------------------------------------------------
    def _value(self, frame, result: FrameResult) -> float:
        if self._measure is not None:
            return float(self._measure(frame, result))
        if self.roi is not None and self.roi != result.roi:
            return focus_value(frame.grey, self.roi)
        return float(result.focus)

    def search_steps(self) -> tuple[int, int]:
        """(coarse, fine) motor steps of the search (the focus bracket's fallback step)."""
        return self._steps()

    def _steps(self) -> tuple[int, int]:
        lo, hi = self.motor.limits
        coarse = self.cfg.coarse_step or max(1, (hi - lo) // 10)
        fine = self.cfg.fine_step or max(1, coarse // 4)
        return coarse, fine

    def _begin(self, why: str, result: FrameResult) -> None:
        self.motor.stop()
        coarse, fine = self._steps()
        first = None
        blur = result.blur_px
        if self.cfg.blur_steps_per_px > 0 and blur is not None and blur == blur:
            # The CNN's blur estimate says roughly how far the peak is: a sharp-looking
            # frame starts with fine steps, a very blurred one with full coarse steps.
            first = int(min(max(blur * self.cfg.blur_steps_per_px, fine), coarse))
        p0 = self.motor.position
        self.start_position = p0
        if self._search_factory is not None:
            self._search = self._search_factory(p0, self.motor.limits, coarse, fine, first)
        else:
            self._search = contrast_search(p0, self.motor.limits, coarse=coarse, fine=fine,
                                           stop_ratio=self.cfg.stop_ratio,
                                           min_rise=self.cfg.min_rise, fit=self.cfg.fit,
                                           first_step=first, sweep=self.cfg.sweep,
                                           approach=self.motor.approach)
        self.state, self.reason = SCANNING, why
        self.frames = self.moves = 0
        self.phase_frames = {}
        self.runs += 1
        self._values = []
        self._ref = None
        self._changed = False
        log.info("autofocus: %s (from %d)", why, p0)
        self._resume(None)

    def _phase(self) -> str:
        """What this frame is spent on: the request it serves, a stop-and-measure split
        into ``measure_moving`` (exposed while the lens moves), ``measure_settle`` (the
        statistics lag) and ``measure`` (a frame that is used)."""
        kind = self._request[0] if self._request else "measure"
        if kind != "measure":
            return kind
        if self.motor.busy:
            return "measure_moving"
        return "measure_settle" if self._idle_run < self._settle else "measure"

    def _drive(self, value: float) -> None:
        kind, _pos = self._request
        if kind in ("sweep", "creep"):
            self._resume(self._sweep_sample(value, _pos))
            return
        if kind in ("go", "to"):
            if not self.motor.busy:
                self._resume(None)
            return
        if self.motor.busy or self._idle_run < self._settle:
            return                      # exposed while moving, or still in the lag
        self._values.append(value)
        if len(self._values) < self.cfg.average_frames:
            return
        mean = sum(self._values) / len(self._values)
        self._values = []
        self._resume((mean, self.motor.approached))

    def _sweep_sample(self, value: float, end: int) -> tuple:
        """(value, consistent, position, arrived) for this frame of a sweep.

        With a motor on its own thread the position comes from its step history at the
        frame's timestamp (``_timed_sample``). Otherwise the frame shows the lens where it
        was ``settle`` frames ago (the statistics lag); with a motor on its own thread and
        no usable timestamp that is known only to about a frame, so those samples steer
        the scan but are never fitted. A frame-clocked sample counts as consistent once
        the sweep, in the approach direction, has taken up the gear play.
        """
        timed = self._timed_sample(value, end)
        if timed is not None:
            return timed
        lag = self._settle
        if len(self._seen) <= lag or self._sweep_from is None:
            return value, False, None, False
        pos = self._seen[-1 - lag]
        arrived = not self.motor.busy and all(p == end for p in list(self._seen)[-1 - lag:])
        return value, self.motor.frame_clocked and self._taken_up(pos, end), pos, arrived

    def _taken_up(self, pos: int, end: int) -> bool:
        """The sweep towards ``end`` runs in the approach direction and has the gear play
        taken up at ``pos``: it started approached, or has travelled the overshoot."""
        up = (end - self._sweep_from) * self.motor.approach > 0
        return up and (self._sweep_taken_up or abs(pos - self._sweep_from) >= self.motor.overshoot)

    def _timed_sample(self, value: float, end: int) -> Optional[tuple]:
        """The sweep sample from the motor's step history at the frame's exposure, or None
        when that is not available (a frame-clocked motor, already exact; a timestamp on
        another clock; the history disabled).

        The lens position is the middle of the positions held during the exposure
        (``frame.timestamp`` to ``+ exposure``). The sample is consistent, i.e. fitted,
        when the lens moved at most half a fine step during the exposure and the sweep
        runs in the approach direction with the gear play taken up (started approached,
        or travelled the backlash overshoot), as on a frame-clocked motor. A frame
        exposed before the sweep's start position was reached has no position yet.
        """
        if self.motor.frame_clocked or not self.position_history or self._stamp is None \
                or self._sweep_from is None:
            return None
        t0 = float(self._stamp)
        span = self.motor.position_span(t0, t0 + self.exposure)
        if span is None:
            return None
        if t0 < self._sweep_t0:
            return value, False, None, False
        low, high = span
        pos = int(round((low + high) / 2))
        fine = self._steps()[1]
        arrived = not self.motor.busy and low == high == end == self.motor.position
        return value, high - low <= fine / 2 and self._taken_up(pos, end), pos, arrived

    def _resume(self, answer) -> None:
        try:
            req = self._search.send(answer)
        except StopIteration as stop:
            out: Outcome = stop.value
            self._end(out.state, out.reason)
            return
        prev, self._request = self._request, req
        kind, pos = req
        if kind in ("sweep", "creep"):
            here = self.motor.position
            if prev is None or prev[0] not in ("sweep", "creep") or prev[1] != pos:
                # A new sweep: straight there, no backlash legs.
                self._sweep_from = here
                self._sweep_taken_up = self.motor.approached and not self.motor.busy
                self._sweep_t0 = self.motor.still_since()
                self._seen.clear()
                self._seen.append(here)
                self.moves += 1
            if kind == "sweep":
                if self.motor.target != pos:
                    self.motor.move_to(pos, compensate=False)
            elif here != pos:   # creep: one fine step a frame
                step = self._steps()[1]
                nxt = min(here + step, pos) if pos > here else max(here - step, pos)
                self.motor.move_to(nxt, compensate=False)
            return
        if pos != self.motor.position or self.motor.busy:
            self.motor.move_to(pos)
            self.moves += 1
            self._idle_run = 0
        elif kind in ("go", "to"):
            self._resume(None)

    def _end(self, state: str, reason: str) -> None:
        self.state, self.reason = state, reason
        self._search = None
        self._request = None
        self._prev = None
        log.info("autofocus %s after %d frames, %d moves: %s", state, self.frames, self.moves,
                 reason)

    def _abort(self, reason: str) -> None:
        if self._search is not None:
            self._search.close()
        self._end(FAILED, reason)
        if self.start_position is not None:
            self.motor.move_to(self.start_position)

    def _watch(self, value: float, moved: bool) -> None:
        """Continuous mode: re-trigger after the scene changes and then holds still."""
        if moved or self._idle_run < self._settle:
            return
        if self._ref is None:
            self._ref = self._prev = value
            return
        r = self.cfg.retrigger_ratio
        ratio = value / max(self._ref, _FLOOR)
        if ratio < r or ratio > 1 / r:
            self._changed = True
        if self._changed:
            step = abs(value / max(self._prev, _FLOOR) - 1)
            self._stable = self._stable + 1 if step < (1 - r) / 4 else 0
            if self._stable >= self.cfg.retrigger_delay:
                self._stable = 0
                self._changed = False
                self.trigger("scene changed")
        self._prev = value


