"""``POST /api/motor``: jog, go to, stop the focus motor from the page.

A request is checked at once on the handler thread (one command, a whole number of
steps, a target inside the soft limits, no autofocus or bracket driving the motor), so the
answer can say why it was refused; a refused move never reaches the motor. An accepted
move is queued and started by the loop thread (``apply``, called from the web sink's
``on_frame``), as ``/api/autofocus`` queues its trigger: the motor then has one driver per
frame, and the HTTP thread returns at once however long the move takes. *Stop* does not
wait for a frame: it stops the motor on the spot (``Motor.stop`` is thread-safe), drops
the queued moves and cancels a running autofocus.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from device.errors import MotorError
from device.viewfinder.web.api import ApiError, integer, only

if TYPE_CHECKING:
    from device.lens.autofocus import Autofocus
    from device.lens.motor import Motor

log = logging.getLogger(__name__)

COMMANDS = ("jog", "goto", "stop")


@dataclass(frozen=True)
class MotorStatus:
    """``/api/status`` shows it under ``motor``."""
    position: int
    target: int                     # where the accepted moves end
    limits: tuple[int, int]
    busy: bool
    driver: str
    fine_step: int                  # the page's jog buttons
    coarse_step: int
    last_error: Optional[str]

    def to_json(self) -> dict:
        return {"position": self.position, "target": self.target, "limits": list(self.limits),
                "busy": self.busy, "driver": self.driver, "fine_step": self.fine_step,
                "coarse_step": self.coarse_step, "last_error": self.last_error}


def default_steps(limits: tuple[int, int]) -> tuple[int, int]:
    """(fine, coarse) jog steps when no autofocus says: a 40th and a 10th of the travel,
    the autofocus's own defaults."""
    span = limits[1] - limits[0]
    coarse = max(1, span // 10)
    return max(1, coarse // 4), coarse


class MotorDesk:
    """The page's motor controls. ``busy`` (any thread) names what else drives the motor
    right now (a bracket), or None."""

    def __init__(self, motor: "Motor", *, autofocus: "Optional[Autofocus]" = None,
                 steps: Optional[tuple[int, int]] = None,
                 busy: Optional[Callable[[], Optional[str]]] = None):
        self.motor = motor
        self.autofocus = autofocus
        self.steps = steps or default_steps(motor.limits)
        self._busy = busy
        self._lock = threading.Lock()
        self._queued: Optional[int] = None     # the newest accepted target, not yet started
        self.last_error: Optional[str] = None

    def status(self) -> MotorStatus:
        m = self.motor
        with self._lock:
            target = self._queued if self._queued is not None else m.target
        return MotorStatus(position=int(m.position), target=int(target), limits=tuple(m.limits),
                           busy=bool(m.busy or self._queued is not None), driver=m.driver,
                           fine_step=self.steps[0], coarse_step=self.steps[1],
                           last_error=self.last_error)

    # --- the handler thread --------------------------------------------------------------
    def command(self, body: dict) -> dict:
        only(body, COMMANDS)
        given = [k for k in COMMANDS if k in body]
        if len(given) != 1:
            raise ApiError(400, 'send one of {"jog": STEPS}, {"goto": POSITION}, {"stop": true}')
        if self.motor.closed:
            raise ApiError(409, "the motor is closed")
        if given[0] == "stop":
            if body["stop"] is not True:
                raise ApiError(400, 'send {"stop": true}')
            self.stop()
            return {"motor": self.status()}
        steps = integer(body, given[0], "a whole number of motor steps")
        why = self._driven_by()
        if why:
            raise ApiError(409, f"{why} is driving the motor: stop it first")
        lo, hi = self.motor.limits
        with self._lock:
            base = self._queued if self._queued is not None else self.motor.target
            target = base + steps if given[0] == "jog" else steps
            if not lo <= target <= hi:
                side, limit = ("lower", lo) if target < lo else ("upper", hi)
                what = f"a jog of {steps:+d} from {base}" if given[0] == "jog" else f"position {target}"
                raise ApiError(400, f"{what} would pass the {side} soft limit {limit} "
                                    f"(limits {lo}..{hi}); the motor did not move",
                               limit=side, limits=[lo, hi], target=target)
            self._queued = target
        return {"motor": self.status()}

    def stop(self) -> None:
        with self._lock:
            self._queued = None
        self.motor.stop()
        if self.autofocus is not None:
            self.autofocus.cancel("stopped from the web page")

    def _driven_by(self) -> Optional[str]:
        af = self.autofocus
        if af is not None and af.status().state == "scanning":
            return "the autofocus"
        return self._busy() if self._busy is not None else None

    # --- the loop thread -----------------------------------------------------------------
    def apply(self) -> None:
        """Start the newest accepted move (jogs were summed into it when accepted)."""
        with self._lock:
            target, self._queued = self._queued, None
        if target is None:
            return
        why = self._driven_by()
        if why:      # began between the request and this frame: the newer intent wins
            log.info("web: motor move to %d dropped: %s took the motor", target, why)
            return
        try:
            self.motor.move_to(target)
            self.last_error = None
        except MotorError as exc:       # closed or faulted since the request
            self.last_error = str(exc)
            log.warning("web: motor move to %d failed: %s", target, exc)
