"""An orderly stop inside a time budget (SIGTERM, SIGINT, the end of a run).

systemd is promised an exit within 2 s of SIGTERM, and SIGKILLs at ``TimeoutStopSec``.
Some close calls can outlast both: a camera stuck inside OpenCV's ``read()`` makes its
``release()`` wait, and a capture writer behind on a slow card holds a full queue. So
each step runs on its own daemon thread and is waited for only until the budget runs
out; a step that has not returned by then is abandoned (logged, never joined again) and
the process exits without it. The caller orders the steps so that what a SIGKILL would
lose (the defect map, the motor position, the motor's power) goes first.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepOutcome:
    """One step of a stop: whether it returned within ``allowed_s``, and how it ended."""
    name: str
    done: bool
    allowed_s: float
    error: Optional[str] = None


class BoundedStop:
    """Runs close steps against one deadline, ``budget_s`` from construction.

    ``clock`` is injected so tests can see how the budget is shared between steps; the
    waits themselves are real ``Thread.join`` timeouts.
    """

    def __init__(self, budget_s: float, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.deadline = clock() + budget_s
        self.outcomes: list[StepOutcome] = []

    def remaining(self) -> float:
        return max(0.0, self.deadline - self._clock())

    def start(self, steps: Sequence[tuple[str, Callable[[], None]]]) -> "list[Pending]":
        """Start each step on its own daemon thread; ``wait`` for them later."""
        started = []
        for name, fn in steps:
            box: dict = {}
            thread = threading.Thread(target=_call, args=(fn, box), name=f"stop: {name}",
                                      daemon=True)
            thread.start()
            started.append(Pending(name, thread, box))
        return started

    def wait(self, pending: "Sequence[Pending]", *, max_s: Optional[float] = None,
             reserve_s: float = 0.0) -> list[StepOutcome]:
        """Wait for ``pending`` at most ``max_s`` and never into the last ``reserve_s`` of
        the budget (kept for the steps that follow)."""
        allowed = max(0.0, self.remaining() - reserve_s)
        if max_s is not None:
            allowed = min(allowed, max_s)
        end = self._clock() + allowed
        out = []
        for p in pending:
            p.thread.join(max(0.0, end - self._clock()))
            done = not p.thread.is_alive()
            outcome = StepOutcome(p.name, done, round(allowed, 3), p.box.get("error"))
            if not done:
                log.warning("stopping: %s did not finish within %.1f s; exiting without it",
                            p.name, allowed)
            elif outcome.error is not None:
                log.error("stopping: %s failed: %s", p.name, outcome.error)
            out.append(outcome)
        self.outcomes.extend(out)
        return out

    def run(self, steps: Sequence[tuple[str, Callable[[], None]]], **limits) -> list[StepOutcome]:
        """Start ``steps`` together and wait for them (``limits`` as for ``wait``)."""
        return self.wait(self.start(steps), **limits)

    def abandoned(self) -> list[str]:
        return [o.name for o in self.outcomes if not o.done]


@dataclass(frozen=True)
class Pending:
    """A started step: its thread, and the box its error lands in."""
    name: str
    thread: threading.Thread
    box: dict


def _call(fn: Callable[[], None], box: dict) -> None:
    try:
        fn()
    except Exception as exc:   # reported by run(); a failing step must not stop the others
        box["error"] = f"{exc.__class__.__name__}: {exc}"
