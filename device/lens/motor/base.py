"""The common focus-motor interface: soft limits, speed ramps, backlash-safe approach.

Every driver (STEP/DIR, ULN2003, servo, simulated lens) subclasses ``Motor`` and supplies
only the electrical part: ``_hw_step``, ``_hw_energise``, ``_hw_release`` and
``_hw_close``. Everything that must hold whatever the driver lives here, once:

* Soft limits are checked twice: when a command is accepted (a target outside them is a
  ``MotorError``) and again before every single step, so no sequence of calls, stop,
  re-target or race can step past them.
* Motion never blocks the caller. Commands replace the current plan and return at once;
  steps are timed by a worker thread (``threaded=True``) or, for the simulated lens in
  tests and benchmarks, by explicit ``advance(dt)`` calls so frame timing is exact.
* Backlash: a final approach always travels at least ``overshoot`` steps in the
  ``approach`` direction, as Ekos and OpenFlexure do; gear play is then always taken up
  on the same side and a given position means the same lens position every time.
* The coils are released after ``idle_release_s`` without motion (if configured), on
  ``release()``, and always on ``close()``.
* A short history of the motor's steps, ``(time, position)`` on the motor's clock, says
  where it was at a past moment (``position_span``): with a motor on its own thread, a
  frame's sensor timestamp then gives the lens position while it was exposed.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_right
from collections import deque
from itertools import islice
from typing import Callable, Optional

from device.errors import MotorError

log = logging.getLogger(__name__)


def step_interval(k: int, n: int, speed: float, accel: float) -> float:
    """Seconds between step ``k-1`` and step ``k`` (1 <= k < n) of an ``n``-step move.

    A trapezoidal profile: the instantaneous rate is capped by the cruise ``speed`` and by
    ``sqrt(2 a s)`` where ``s`` is the distance travelled from the start or still to go,
    so the motor ramps up from rest and ramps down to rest. ``accel == 0``: no ramp.
    """
    if accel <= 0:
        return 1.0 / speed
    rate = min(speed, math.sqrt(2.0 * accel * k), math.sqrt(2.0 * accel * (n - k + 1)))
    return 1.0 / max(rate, 1.0)


# Steps kept in the position history: at the fastest configured motor (3000 steps/s) a
# third of a second, several frames; a frame is looked up within a frame or two.
HISTORY_STEPS = 1024
# A timestamp older than this, or later than the motor's clock now, is not on the motor's
# clock (a video file's position in seconds, a missing timestamp): no lookup.
HISTORY_MAX_AGE = 2.0


def history_span(history, t0: float, t1: float) -> Optional[tuple[int, int]]:
    """(lowest, highest) position held during ``t0..t1`` according to ``history``, a
    sequence of ``(time, position)`` oldest first, each entry the moment a step (or a
    calibration) put the motor at that position; None if ``t0`` precedes the history.

    A stepper holds its position between steps, so the position in force at ``t`` is the
    newest entry at or before ``t`` (no interpolation between entries).
    """
    if not history or t1 < t0 or t0 < history[0][0]:
        return None
    i = bisect_right(history, t0, key=_time) - 1
    j = max(bisect_right(history, t1, key=_time), i + 1)
    held = [p for _, p in islice(history, i, j)]
    return min(held), max(held)


def _time(entry: tuple) -> float:
    return entry[0]


class Motor:
    """A focus motor. Positions are integers in motor steps, within ``limits``."""

    driver = "abstract"

    def __init__(self, *, limits: tuple[int, int], position: int = 0, speed: float = 1000.0,
                 acceleration: float = 0.0, approach: str = "up", overshoot: int = 0,
                 release_when_idle: bool = True, idle_release_s: float = 1.0,
                 store=None, threaded: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        lo, hi = int(limits[0]), int(limits[1])
        if lo >= hi:
            raise MotorError(f"soft limits {lo}..{hi} are empty")
        if not lo <= position <= hi:
            raise MotorError(f"motor position {position} lies outside the soft limits {lo}..{hi}; "
                             "run 'focus-assist motor zero' or 'home' to recalibrate")
        if speed <= 0 or acceleration < 0 or overshoot < 0:
            raise MotorError("motor speed must be > 0, acceleration and overshoot >= 0")
        self.limits = (lo, hi)
        self.speed = float(speed)
        self.acceleration = float(acceleration)
        self.approach = 1 if approach == "up" else -1
        self.overshoot = int(overshoot)
        self.release_when_idle = release_when_idle
        self.idle_release_s = float(idle_release_s)
        self._store = store
        self._position = int(position)
        # Direction of the last step actually made; None = unknown (gear play not known taken up).
        self._last_dir: Optional[int] = None
        self._energised = False
        self._closed = False
        self._error: Optional[BaseException] = None
        self._homing = False
        self.moves = 0            # commands accepted (for --stats)
        self.steps = 0            # steps made
        # The plan: legs still to run, and the one in progress.
        self._legs: deque[int] = deque()
        self._leg_target: Optional[int] = None
        self._leg_n = 0
        self._leg_k = 0
        self._next_due = 0.0
        self._last_step_t = 0.0
        self._persist_pending: Optional[bool] = None
        self._cond = threading.Condition()
        self._threaded = threaded
        self._clock = clock
        self._now = 0.0 if not threaded else clock()
        # (time, position) at each step, on the motor's clock (``clock`` when threaded,
        # the simulated ``advance`` clock otherwise); appended on the stepping thread.
        self._history: deque = deque([(self._now, self._position)], maxlen=HISTORY_STEPS)
        self._thread: Optional[threading.Thread] = None
        if threaded:
            self._thread = threading.Thread(target=self._worker, name=f"motor-{self.driver}",
                                            daemon=True)
            self._thread.start()

    # --- hardware hooks (subclasses) -----------------------------------------------
    def _hw_step(self, direction: int, new_position: int) -> None:
        raise NotImplementedError

    def _hw_energise(self) -> None:
        pass

    def _hw_release(self) -> None:
        pass

    def _hw_close(self) -> None:
        pass

    # --- state ---------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Where the motor is now (steps)."""
        return self._position

    @property
    def target(self) -> int:
        """Where the motor will be once the current plan has run."""
        with self._cond:
            if self._legs:
                return self._legs[-1]
            if self._leg_target is not None:
                return self._leg_target
            return self._position

    @property
    def busy(self) -> bool:
        """True from the moment a move is accepted until its last step is made."""
        with self._cond:
            return self._leg_target is not None or bool(self._legs)

    @property
    def approached(self) -> bool:
        """True when the last step was in the approach direction: the gear play is taken up
        on the usual side, so this position means the usual lens position."""
        return self._last_dir == self.approach

    def _clock_now(self) -> float:
        return self._clock() if self._threaded else self._now

    def position_span(self, t0: float, t1: Optional[float] = None) -> Optional[tuple[int, int]]:
        """(lowest, highest) position the motor held from ``t0`` to ``t1`` (default ``t0``),
        times on the motor's clock (``time.monotonic`` for a motor on its own thread);
        None when that is not known: before the kept history, later than now, or more
        than ``HISTORY_MAX_AGE`` ago (a timestamp on some other clock)."""
        t1 = t0 if t1 is None else t1
        with self._cond:
            now = self._clock_now()
            if not (now - HISTORY_MAX_AGE <= t0 <= t1 <= now):
                return None
            # Looked up in place (a few bisection steps), not copied: once per AF frame.
            return history_span(self._history, t0, t1)

    def still_since(self) -> float:
        """The time (motor clock) since which the motor has held its current position:
        its last step, or now while a move is under way."""
        with self._cond:
            if self._leg_target is not None or self._legs:
                return self._clock_now()
            return self._history[-1][0]

    def truth(self) -> dict:
        """Where a simulated lens really is (empty for real hardware: nobody knows)."""
        return {}

    @property
    def frame_clocked(self) -> bool:
        """True when ``advance(dt)`` drives the motor (simulation), not a worker thread."""
        return not self._threaded

    @property
    def energised(self) -> bool:
        return self._energised

    @property
    def closed(self) -> bool:
        return self._closed

    def clamp(self, position: float) -> int:
        lo, hi = self.limits
        return int(min(max(round(position), lo), hi))

    def within(self, position: float) -> bool:
        return self.limits[0] <= position <= self.limits[1]

    # --- commands --------------------------------------------------------------------
    def move_to(self, target: int, *, compensate: bool = True) -> None:
        """Start moving to ``target``, replacing any motion under way; returns at once.

        With ``compensate`` (the default) the final approach is made in the configured
        direction, from at least ``overshoot`` steps away, unless the gear play is already
        taken up on that side. Raises ``MotorError`` for a target outside the soft limits.
        """
        if isinstance(target, bool) or not isinstance(target, (int, float)) or target != target:
            raise MotorError(f"motor target must be a number, got {target!r}")
        if target != int(target):
            raise MotorError(f"motor target must be a whole number of steps, got {target!r}")
        target = int(target)
        with self._cond:
            self._check_usable()
            lo, hi = self.limits
            if not lo <= target <= hi:
                raise MotorError(f"target {target} lies outside the soft limits {lo}..{hi}")
            self._legs.clear()
            # The leg under way is abandoned at its current step (focus motors are light
            # and slow enough to stop within a step).
            self._leg_target = None
            legs = self._plan(target) if compensate else [target]
            self._legs.extend(legs)
            self.moves += 1
            self._persist_pending = True   # saved by the worker: never fsync in the caller
            self._cond.notify_all()

    def move_by(self, delta: int, *, compensate: bool = True) -> None:
        """Move ``delta`` steps from where the current plan ends (jogging adds up)."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise MotorError(f"motor step count must be an integer, got {delta!r}")
        self.move_to(self.target + delta, compensate=compensate)

    def stop(self) -> None:
        """Abandon the plan; the motor stops at its current step. Returns at once."""
        with self._cond:
            was = self._leg_target is not None or bool(self._legs)
            self._legs.clear()
            self._leg_target = None
            if was:
                self._persist_pending = False
            self._cond.notify_all()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until idle (threaded motors); False on timeout. Re-raises a driver fault."""
        if not self._threaded:
            return not self.busy
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._leg_target is not None or self._legs:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            if self._error is not None:
                raise MotorError(f"{self.driver} motor fault: {self._error}")
        return True

    def release(self) -> None:
        """Stop and de-energise the coils (the lens stays put by friction)."""
        self.stop()
        with self._cond:
            if self._energised:
                self._energised = False
                self._hw_release()

    def set_position(self, position: int) -> None:
        """Calibration: declare that the motor is now at ``position`` (no motion)."""
        with self._cond:
            self._check_usable()
            if self._leg_target is not None or self._legs:
                raise MotorError("cannot recalibrate while the motor is moving")
            lo, hi = self.limits
            if not lo <= position <= hi:
                raise MotorError(f"position {position} lies outside the soft limits {lo}..{hi}")
            self._position = int(position)
            self._last_dir = None
            self._persist_pending = False
            self._history.clear()
            self._history.append((self._clock_now(), self._position))
        self._flush_persist()

    def close(self) -> None:
        """Stop, de-energise, save the position, free the pins. Safe to call twice."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._legs.clear()
            self._leg_target = None
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        try:
            with self._cond:
                self._energised = False
                self._hw_release()
        finally:
            try:
                self._persist(moving=False)
            finally:
                self._hw_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # --- planning ----------------------------------------------------------------------
    def _plan(self, target: int) -> list[int]:
        """Legs that reach ``target`` with the final approach in the ``approach`` direction."""
        d = self.approach
        start = self._position
        travel = (target - start) * d
        if self.overshoot == 0 or (travel >= 0 and self._last_dir == d) or travel >= self.overshoot:
            return [target]
        pre = self.clamp(target - d * self.overshoot)
        if pre == target:   # target sits on the limit the approach comes from
            return [target]
        return [pre, target]

    # --- stepping (called with the lock held) ------------------------------------------
    def _due(self) -> Optional[float]:
        """Start the next leg if needed; the time the next step is due, or None if idle."""
        while self._leg_target is None:
            if not self._legs:
                return None
            tgt = self._legs.popleft()
            if tgt == self._position:
                continue
            self._leg_target = tgt
            self._leg_n = abs(tgt - self._position)
            self._leg_k = 0
            self._next_due = self._now   # the first step goes at once
        return self._next_due

    def _do_step(self) -> None:
        d = 1 if self._leg_target > self._position else -1
        new = self._position + d
        lo, hi = self.limits
        if not self._homing and not lo <= new <= hi:
            # Unreachable through the public commands; kept so no bug can pass a limit.
            log.error("soft limit guard: refused step to %d (limits %d..%d)", new, lo, hi)
            self._legs.clear()
            self._leg_target = None
            return
        if not self._energised:
            self._hw_energise()
            self._energised = True
        self._hw_step(d, new)
        self._position = new
        self._history.append((self._now, new))
        self._last_dir = d
        self.steps += 1
        self._leg_k += 1
        self._last_step_t = self._now
        if self._position == self._leg_target or self._leg_k >= self._leg_n:
            self._leg_target = None
            if not self._legs:
                self._persist_pending = False
                self._cond.notify_all()
            else:
                self._next_due = self._now
        else:
            self._next_due = self._now + step_interval(self._leg_k, self._leg_n,
                                                        self.speed, self.acceleration)

    def _idle_release_due(self) -> Optional[float]:
        if not (self.release_when_idle and self._energised):
            return None
        return self._last_step_t + self.idle_release_s

    # --- the clock: worker thread, or explicit advance() --------------------------------
    def _worker(self) -> None:
        while True:
            self._flush_persist()
            with self._cond:
                if self._closed:
                    return
                self._now = self._clock()
                try:
                    due = self._due()
                    if due is not None and due <= self._now:
                        self._do_step()
                    else:
                        idle_due = self._idle_release_due() if due is None else None
                        if idle_due is not None and idle_due <= self._now:
                            self._energised = False
                            self._hw_release()
                            continue
                        wake = due if due is not None else idle_due
                        self._cond.wait(None if wake is None else max(wake - self._now, 0.0))
                except Exception as exc:  # a pin fault: stop, report on the next command
                    log.exception("%s motor fault", self.driver)
                    self._error = exc
                    self._legs.clear()
                    self._leg_target = None
                    self._cond.notify_all()

    def advance(self, dt: float) -> None:
        """Run the motor for ``dt`` seconds of simulated time (``threaded=False`` only)."""
        if self._threaded:
            raise MotorError("advance() is only for motors built with threaded=False")
        with self._cond:
            end = self._now + dt
            while True:
                due = self._due()
                if due is None or due > end:
                    break
                self._now = max(self._now, due)
                self._do_step()
            self._now = end
            if self._due() is None:
                idle_due = self._idle_release_due()
                if idle_due is not None and idle_due <= self._now:
                    self._energised = False
                    self._hw_release()
        self._flush_persist()

    # --- helpers ---------------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._closed:
            raise MotorError(f"{self.driver} motor is closed")
        if self._error is not None:
            raise MotorError(f"{self.driver} motor fault: {self._error}")

    def _flush_persist(self) -> None:
        # Called without the lock: the file write (with fsync) must not hold up stepping.
        with self._cond:
            pending = self._persist_pending
            self._persist_pending = None
        if pending is not None:
            self._persist(moving=pending)

    def _persist(self, *, moving: bool) -> None:
        if self._store is None:
            return
        try:
            self._store.save(self._position, moving=moving, driver=self.driver)
        except OSError as exc:  # a full or read-only card must not stop focusing
            log.warning("cannot save the motor position to %s: %s", self._store.path, exc)

    def home(self, travel: int, *, switch: Optional[Callable[[], bool]] = None,
             timeout: float = 120.0) -> None:
        """Calibrate against the lower mechanical stop (or a limit switch), then call it
        ``limits[0]``. The one motion allowed past the soft limits: it is how they get
        their meaning. Blocking; threaded motors only."""
        if not self._threaded:
            raise MotorError("home() needs a threaded motor")
        with self._cond:
            self._check_usable()
            self._homing = True
            self._legs.clear()
            self._leg_target = None
            self._legs.append(self._position - int(travel))
            self._cond.notify_all()
        try:
            deadline = time.monotonic() + timeout
            while self.busy:
                if switch is not None and switch():
                    self.stop()
                    break
                if time.monotonic() > deadline:
                    self.stop()
                    raise MotorError("homing timed out")
                time.sleep(0.001)
            if self._error is not None:
                raise MotorError(f"{self.driver} motor fault: {self._error}")
        finally:
            with self._cond:
                self._homing = False
        self.set_position(self.limits[0])
