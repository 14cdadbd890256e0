"""The one small interface every frame source implements."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One camera frame.

    ``grey`` is what gets scored (the lores Y plane on a Pi). ``color`` is what is displayed
    and captured (the main stream on a Pi), or None when the source has only grey.
    """
    grey: np.ndarray
    timestamp: float
    index: int
    color: Optional[np.ndarray] = None

    @property
    def display(self) -> np.ndarray:
        """A BGR image to show or save (colour if the source has it)."""
        if self.color is not None:
            return self.color
        import cv2

        return cv2.cvtColor(self.grey, cv2.COLOR_GRAY2BGR)


class FrameSource:
    """Yields frames until the input ends. Subclasses implement ``_read`` and ``_close``.

    ``live`` sources are cameras: the loop always scores the newest frame and may drop
    stale ones. File sources are not live: every frame is processed in order.
    """
    live: bool = True
    name: str = "source"

    def __init__(self):
        self._closed = False
        self._index = 0

    def read(self) -> Optional[Frame]:
        """The next frame, or None at the end of the input."""
        if self._closed:
            return None
        return self._read()

    def _read(self) -> Optional[Frame]:  # pragma: no cover - interface
        raise NotImplementedError

    def _next_index(self) -> int:
        i = self._index
        self._index += 1
        return i

    @property
    def closed(self) -> bool:
        return self._closed

    def info(self) -> dict:
        """Plain facts for --stats and the status API."""
        return {"name": self.name, "live": self.live}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def _close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        while True:
            f = self.read()
            if f is None:
                return
            yield f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def now() -> float:
    return time.monotonic()
