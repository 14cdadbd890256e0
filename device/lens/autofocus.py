"""Contrast-detect autofocus: a frame-loop sink that drives a ``device.lens.motor.Motor``.

The search (``contrast_search``) is a generator: it yields what it wants to know,
``("measure", position)`` or ``("go", position)``, and is sent back the focus value there.
The sink (``Autofocus``) does the waiting: it moves the motor (backlash-safe), drops the
frames exposed while the lens moved plus ``settle_frames`` more (a camera's statistics lag
the lens), averages ``average_frames`` frames, and resumes the search. So the search reads
like the algorithm, and ``on_frame`` never blocks: motion runs on the motor's own thread.

The search:

1. Measure where the lens is, then scan in coarse steps towards the larger part of the
   travel, stopping early once the measure falls below ``stop_ratio`` of the best so far
   (libcamera's contrast ratio). If the first step falls, or the scan reaches a limit
   without a peak, it scans the other way.
2. Every measurement position is reached by a final approach in the motor's approach
   direction, so all samples see the gear play taken up on the same side.
3. The peak is fitted on log(focus) through the best sample and its two neighbours.
   Across coarse spacing the measure is cusp-shaped, so a symmetric V is fitted (or a
   hyperbola once four samples lie near the top; on the simulated lens the V is 2-4x
   more accurate than a parabola at coarse spacing); once the neighbours are within two
   fine steps, a parabola. The fine pass measures at the fitted vertex, or one fine step
   beside a coarse sample the vertex lands on, until the best sample is bracketed at
   fine spacing; then the final approach, backlash-safe like every move.
4. "focused" only if the best sample beats samples on both sides by ``min_rise``:
   the measure truly rose and fell. Otherwise (a flat, featureless scene; a peak at a
   travel limit; a timeout) "failed", and the lens goes back to where it started.

Modes: one-shot (``trigger()``, from the CLI, a GPIO button or the web viewfinder) and
continuous (re-trigger once the focus value has moved beyond ``retrigger_ratio`` of its
value at lock and then held still for ``retrigger_delay`` frames, as libcamera does).
"""
from __future__ import annotations

import logging
import math
from typing import Generator, Optional

from device.config import AutofocusConfig

log = logging.getLogger(__name__)

IDLE, SCANNING, FOCUSED, FAILED = "idle", "scanning", "focused", "failed"
_FLOOR = 1e-6   # focus values are > 0; keeps log() finite on a black frame
FLAT_LOG_CHANGE = 0.05   # |log ratio| below which two coarse samples are "no change"


# --- peak fits on log(focus) ------------------------------------------------------------

def fit_v(x: tuple[float, float, float], y: tuple[float, float, float]) -> float:
    """Vertex of a symmetric V (equal and opposite slopes) through three points with
    ``y[1]`` the largest: the steeper side's slope is taken for both branches."""
    (x1, x2, x3), (y1, y2, y3) = x, y
    kl = (y2 - y1) / (x2 - x1)
    kr = (y2 - y3) / (x3 - x2)
    if kl <= 0 and kr <= 0:
        return x2
    if kl >= kr:   # both left points on the rising branch: the peak is right of x2
        return (x2 + x3) / 2 + (y3 - y2) / (2 * kl)
    return (x1 + x2) / 2 + (y2 - y1) / (2 * kr)


def fit_parabola(x: tuple[float, float, float], y: tuple[float, float, float]) -> float:
    """Vertex of the parabola through three points (any spacing)."""
    (x1, x2, x3), (y1, y2, y3) = x, y
    den = (x2 - x1) * (y2 - y3) - (x2 - x3) * (y2 - y1)
    if den == 0:
        return x2
    num = (x2 - x1) ** 2 * (y2 - y3) - (x2 - x3) ** 2 * (y2 - y1)
    return x2 - 0.5 * num / den


def fit_hyperbola(xs, ys, lo: float, hi: float, widths=(4, 8, 12, 18, 26, 38, 55)) -> float:
    """Vertex ``v`` of ``y = a - k * sqrt((x - v)^2 + w^2)`` fitted to all points.

    On log(focus) this is Ekos's hyperbola: parabolic within ``w`` of the peak, straight
    (a V) in the tails, so one model serves widely and closely spaced samples alike, and
    lopsided triples (two samples close together on one side) do not fool it. ``a`` and
    ``k`` are solved by least squares for every ``v`` on a 1-step grid over ``lo..hi`` and
    every candidate ``w``; the best residual wins. Vectorised: well under a millisecond.
    """
    import numpy as np

    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    vs = np.arange(math.floor(lo), math.ceil(hi) + 1, dtype=np.float64)
    best_v, best_err = float(x[np.argmax(y)]), math.inf
    ym = y.mean()
    for w in widths:
        g = -np.sqrt((x[None, :] - vs[:, None]) ** 2 + float(w) ** 2)   # (V, N)
        gm = g.mean(axis=1, keepdims=True)
        gc = g - gm
        k = (gc * (y - ym)).sum(axis=1) / np.maximum((gc * gc).sum(axis=1), 1e-12)
        k = np.maximum(k, 0.0)
        resid = (y - ym) - k[:, None] * gc
        err = (resid * resid).sum(axis=1)
        i = int(np.argmin(err))
        if err[i] < best_err:
            best_err, best_v = float(err[i]), float(vs[i])
    return best_v


def fit_peak(x, y, kind: str = "v") -> float:
    """Vertex of the fit through (x, y), kept inside the bracket ``x[0]..x[2]``."""
    v = fit_v(x, y) if kind == "v" else fit_parabola(x, y)
    if not math.isfinite(v):
        v = x[1]
    return min(max(v, x[0]), x[2])


# --- the search ------------------------------------------------------------------------

TOP_LOG_SPAN = 2.5   # samples within e^2.5 (12x) of the best feed the hyperbola fit


def _vertex(samples: dict, l: int, b: int, r: int, kind: str, close: float) -> float:
    """The fitted peak between ``b``'s neighbours ``l`` and ``r``.

    Within ``close`` steps on both sides the top of the curve is a parabola in log(focus)
    (the fine pass); across wider spacing it is cusp-shaped, so a hyperbola (4+ samples
    near the top) or a symmetric V (3) is fitted instead, unless ``kind`` is "parabola".
    """
    if kind == "v" and max(b - l, r - b) > close:
        ys = [math.log(samples[p]) for p in (l, b, r)]
        top = math.log(samples[b]) - TOP_LOG_SPAN
        pts = [(p, math.log(v)) for p, v in samples.items() if math.log(v) >= top]
        if len(pts) >= 4:
            xs, yv = zip(*pts)
            return fit_hyperbola(xs, yv, l, r)
        return fit_peak((l, b, r), tuple(ys), "v")
    ys = tuple(math.log(samples[p]) for p in (l, b, r))
    return fit_peak((l, b, r), ys, "parabola")


class Outcome:
    def __init__(self, state: str, reason: str, position: int):
        self.state, self.reason, self.position = state, reason, position


Request = tuple  # ("measure", position) or ("go", position)


def contrast_search(p0: int, limits: tuple[int, int], *, coarse: int, fine: int,
                    stop_ratio: float = 0.75, min_rise: float = 0.15, fit: str = "v",
                    first_step: Optional[int] = None,
                    ) -> Generator[Request, Optional[tuple[float, bool]], Outcome]:
    """The AF search as a generator (see the module docstring).

    Yields requests; each ``("measure", p)`` is answered with ``(value, consistent)``,
    where ``consistent`` says the lens reached ``p`` by the usual final approach (only
    those samples are fitted; a sample taken with the gear play in an unknown state still
    steers the scan). ``("go", p)`` is answered with None. Returns an ``Outcome``.
    """
    lo, hi = limits
    tol = max(1, fine // 3)
    raw: dict[int, float] = {}      # every sample: steers the scan, judges rise and fall
    good: dict[int, float] = {}     # samples reached by the usual approach: fitted

    def clamp(p: float) -> int:
        return int(min(max(round(p), lo), hi))

    def record(p: int, answer) -> float:
        value, consistent = answer
        value = max(float(value), _FLOOR)
        raw[p] = value
        if consistent:
            good[p] = value
        else:
            good.pop(p, None)
        return value

    def neighbours(samples: dict, b: int):
        left = [p for p in samples if p < b]
        right = [p for p in samples if p > b]
        return (max(left) if left else None), (min(right) if right else None)

    def rose_and_fell() -> bool:
        # Some sample on each side of the best is lower by min_rise (the nearest ones may
        # both sit high on the shoulders of a peak that lies between them).
        b = max(raw, key=raw.get)
        left = [raw[p] for p in raw if p < b]
        right = [raw[p] for p in raw if p > b]
        if not left or not right:
            return False
        return raw[b] >= (1 + min_rise) * max(min(left), min(right))

    def best() -> int:
        return max(raw, key=raw.get)

    record(p0, (yield ("measure", p0)))
    step = max(1, first_step or coarse)
    # Towards the larger part of the travel first: that is where the peak more likely is.
    first_dir = 1 if hi - p0 >= p0 - lo else -1
    for direction in (first_dir, -first_dir):
        if rose_and_fell():
            break
        b = best()
        l, r = neighbours(raw, b)
        ahead = r if direction > 0 else l
        if ahead is not None and raw[b] >= (1 + min_rise) * raw[ahead] and b in (lo, hi):
            break   # rose all the way to a limit: nothing to find the other way
        p = max(raw) if direction > 0 else min(raw)
        while True:
            q = clamp(p + direction * step)
            if q == p:
                break
            prev = raw[p]
            v = record(q, (yield ("measure", q)))
            p = q
            if v < stop_ratio * raw[best()]:
                break
            # Far from focus the measure hardly changes: no peak is near, so stride out
            # (moves cost fewer frames per step when long). Back to coarse steps as soon
            # as it changes.
            flat = abs(math.log(v / prev)) < FLAT_LOG_CHANGE
            step = min(step * 2, 2 * coarse) if flat else coarse
    if not rose_and_fell():
        b = best()
        if max(raw.values()) < (1 + min_rise) * min(raw.values()):
            why = "flat: the focus measure never rose and fell (featureless scene?)"
        elif b in (lo, hi):
            why = f"the focus measure peaks at the travel limit {b}"
        else:
            why = "no clear peak: the focus measure did not rise and fall around one position"
        yield ("go", p0)
        return Outcome(FAILED, why, p0)

    # Fine pass: fit the peak through the best consistent sample and its neighbours and
    # measure at the vertex, until the vertex lands on a sample bracketed at fine spacing.
    coarse_best = best()
    target = None
    for _ in range(8):
        b = max(good, key=good.get) if good else coarse_best
        l, r = neighbours(good, b)
        if b not in good or l is None or r is None:
            # A missing neighbour (e.g. only the start sample was there): measure one.
            if b not in good:
                q = b
            elif l is None:
                q = clamp(b - fine)
            else:
                q = clamp(b + fine)
            if q in good:   # at a limit: the peak is not bracketed
                break
            record(q, (yield ("measure", q)))
            continue
        v = clamp(_vertex(good, l, b, r, fit, close=2 * fine))
        near = min(good, key=lambda p: abs(p - v))
        if abs(near - v) <= tol:
            nl, nr = neighbours(good, near)
            close_l = nl is not None and near - nl <= 2 * fine
            close_r = nr is not None and nr - near <= 2 * fine
            if close_l and close_r:
                target = v          # bracketed at fine spacing: the parabola is reliable
                break
            # A fit through widely spaced samples cannot place the peak to the depth of
            # field: probe one fine step out on the side without a close neighbour
            # (towards the fitted peak, or the higher neighbour, if both lack one).
            if close_l != close_r:
                d = 1 if close_l else -1
            elif v != near:
                d = 1 if v > near else -1
            else:
                d = 1 if nr is not None and (nl is None or good[nr] > good[nl]) else -1
            q = clamp(near + d * fine)
            if q in good:
                target = v
                break
            record(q, (yield ("measure", q)))
            continue
        record(v, (yield ("measure", v)))
    if target is None:
        target = max(good, key=good.get) if good else best()
    rise = raw[coarse_best] / max(min(raw.values()), _FLOOR)
    yield ("go", target)
    return Outcome(FOCUSED, f"peak at {target}: the measure rose {rise:.1f}x and fell", target)


# --- the sink ------------------------------------------------------------------------------

class Autofocus:
    """A frame-loop sink running contrast-detect AF on ``result["focus"]``.

    ``trigger()`` may be called from any thread (web handler, GPIO button callback); all
    state changes happen on the loop thread inside ``on_frame``. With a frame-clocked
    motor (the simulated lens), ``on_frame`` also advances the motor by one frame period.
    """

    def __init__(self, motor, cfg: AutofocusConfig = AutofocusConfig(), *, roi=None,
                 start: bool = False, owns_motor: bool = False, pin_factory=None,
                 frame_period: float = 1.0 / 30, search=None):
        self.motor = motor
        # ``search(p0, limits, coarse, fine, first_step)`` -> a generator speaking the
        # protocol of ``contrast_search``; other strategies plug in here (the benchmark's
        # full sweep and libcamera-style scan run through this same sink).
        self._search_factory = search
        self.cfg = cfg
        self.roi = tuple(roi) if roi else None
        self.owns_motor = owns_motor
        self.frame_period = frame_period
        self.state = IDLE
        self.reason = "waiting for a trigger"
        self.frames = 0            # frames from the AF start until focused (or failed)
        self.moves = 0             # moves the AF commanded in its last run
        self.runs = 0
        self.start_position: Optional[int] = None
        self._trigger: Optional[str] = "start" if start else None
        self._search = None
        self._request: Optional[Request] = None
        self._values: list[float] = []
        self._idle_run = 0
        self._last_steps = motor.steps
        # With a motor on its own thread we only know to the frame when it stopped, so
        # one more frame is dropped than the camera's lag needs.
        self._settle = cfg.settle_frames + (0 if motor.frame_clocked else 1)
        self._ref: Optional[float] = None
        self._prev: Optional[float] = None
        self._changed = False
        self._stable = 0
        self._closed = False
        self._button = None
        if cfg.button_pin is not None:
            try:
                from gpiozero import Button

                self._button = Button(cfg.button_pin, pin_factory=pin_factory, bounce_time=0.05)
                self._button.when_pressed = lambda: self.trigger("button")
            except Exception as exc:
                from device.errors import MotorError
                raise MotorError(f"cannot open autofocus.button_pin: {exc}") from None

    # --- control (any thread) ---------------------------------------------------------
    def trigger(self, reason: str = "triggered") -> None:
        """Start a one-shot AF at the next frame (ignored while one is running)."""
        self._trigger = reason

    # --- the sink interface ----------------------------------------------------------
    def on_frame(self, frame, result: dict) -> None:
        if self._closed:
            return
        value = self._value(frame, result)
        steps = self.motor.steps
        moved = self.motor.busy or steps != self._last_steps
        self._last_steps = steps
        self._idle_run = 0 if moved else self._idle_run + 1
        if self._trigger is not None:
            why, self._trigger = self._trigger, None
            if self.state != SCANNING:
                self._begin(why, result)
        if self.state == SCANNING:
            self.frames += 1
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

    def stats(self) -> dict:
        af = {"state": self.state, "reason": self.reason, "frames": self.frames,
              "moves": self.moves, "position": self.motor.position, "mode": self.cfg.mode,
              "runs": self.runs}
        truth = getattr(self.motor, "truth", None)
        if truth is not None:
            t = truth()
            if t:
                af.update(t)
        return {"af": af}

    def overlay_text(self) -> str:
        return f"AF {self.state}" + (f" @{self.motor.position}" if self.state == FOCUSED else "")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._button is not None:
            self._button.close()
        try:
            self.motor.stop()
        finally:
            if self.owns_motor:
                self.motor.close()

    # --- internals ---------------------------------------------------------------------
    def _value(self, frame, result: dict) -> float:
        if self.roi is not None and list(self.roi) != (result.get("roi") or None):
            from device.scoring.measures import focus_value

            return focus_value(frame.grey, self.roi)
        return float(result["focus"])

    def _steps(self) -> tuple[int, int]:
        lo, hi = self.motor.limits
        coarse = self.cfg.coarse_step or max(1, (hi - lo) // 10)
        fine = self.cfg.fine_step or max(1, coarse // 4)
        return coarse, fine

    def _begin(self, why: str, result: dict) -> None:
        self.motor.stop()
        coarse, fine = self._steps()
        first = None
        blur = result.get("blur_px")
        if self.cfg.blur_steps_per_px > 0 and blur is not None and math.isfinite(blur):
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
                                           first_step=first)
        self.state, self.reason = SCANNING, why
        self.frames = self.moves = 0
        self.runs += 1
        self._values = []
        self._ref = None
        self._changed = False
        log.info("autofocus: %s (from %d)", why, p0)
        self._resume(None)

    def _drive(self, value: float) -> None:
        kind, _pos = self._request
        if kind == "go":
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

    def _resume(self, answer) -> None:
        try:
            req = self._search.send(answer)
        except StopIteration as stop:
            out: Outcome = stop.value
            self._end(out.state, out.reason)
            return
        self._request = req
        kind, pos = req
        if pos != self.motor.position or self.motor.busy:
            self.motor.move_to(pos)
            self.moves += 1
            self._idle_run = 0
        elif kind == "go":
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


# --- wiring for ``focus-assist run`` --------------------------------------------------------

def build_autofocus_sink(cfg, source, runtime: dict, *, motor: Optional[str] = None,
                         autofocus: Optional[str] = None, pin_factory=None):
    """The motor + AF sink for ``run --motor DRIVER --autofocus [once|continuous]``.

    None when neither flag is given. ``--motor`` alone builds the sink idle (the web
    viewfinder or the GPIO button can still trigger it: ``runtime["autofocus"].trigger()``);
    ``--autofocus`` starts a one-shot AF on the first frame, or runs continuous AF. The sink
    owns the motor: closing the loop stops it, saves the position and de-energises it.
    """
    from dataclasses import replace

    from device.errors import InputError
    from device.lens.motor import open_motor

    if motor is None and autofocus is None:
        return None
    mcfg = cfg.motor if motor is None else replace(cfg.motor, driver=motor)
    is_sim = hasattr(source, "lens_position") and hasattr(source, "best_position")
    if mcfg.driver == "sim" and not is_sim:
        raise InputError("the sim motor moves the simulated lens: use it with --source sim, "
                         "or choose --motor stepdir|uln2003|servo")
    acfg = cfg.autofocus
    if autofocus is not None and autofocus != acfg.mode:
        acfg = replace(acfg, mode=autofocus)
    state_dir = getattr(getattr(cfg, "service", None), "state_dir", None)
    m = open_motor(mcfg, sim_camera=source if is_sim else None, pin_factory=pin_factory,
                   state_dir=state_dir)
    fps = getattr(getattr(cfg, "sim", None), "fps", 0.0) if is_sim else 0.0
    try:
        af = Autofocus(m, acfg, start=autofocus is not None, owns_motor=True,
                       pin_factory=pin_factory, frame_period=1.0 / fps if fps > 0 else 1.0 / 30)
    except BaseException:
        m.close()
        raise
    runtime["autofocus"] = af
    runtime["motor"] = m
    return af
