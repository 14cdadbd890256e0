"""Frames per second over the last few events: the loop, the viewfinder and the stream."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Optional


class RateMeter:
    """Events per second over the last ``window`` events (thread-safe ``tick``)."""

    def __init__(self, window: int = 30, clock: Callable[[], float] = time.monotonic,
                 stale_after: Optional[float] = None):
        # ``stale_after``: seconds without an event after which the rate reads 0 (a stalled
        # stream shows 0 fps, not the rate it had when it stopped).
        self._times: deque = deque(maxlen=window + 1)
        self._stale_after = stale_after
        self._clock = clock
        self._lock = threading.Lock()

    def tick(self, t: Optional[float] = None) -> None:
        with self._lock:
            self._times.append(self._clock() if t is None else t)

    @property
    def fps(self) -> float:
        with self._lock:
            ts = tuple(self._times)
        if self._stale_after is not None and ts and self._clock() - ts[-1] >= self._stale_after:
            return 0.0
        if len(ts) >= 2 and ts[-1] > ts[0]:
            return (len(ts) - 1) / (ts[-1] - ts[0])
        return 0.0
