"""MJPEG for any number of viewers: one encoder thread, shared bytes.

The encoder takes the newest frame from the viewfinder, draws the overlay on a copy and
encodes it once; every client thread waits for the next sequence number and writes the
same bytes. The frame loop never waits for any of this, a slow client only skips frames,
and nobody encodes when nobody watches (a Pi's CPU is better spent on scoring).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Optional

from device.common.rate import RateMeter

import cv2

log = logging.getLogger(__name__)

DEMAND_GRACE_S = 2.0   # keep encoding this long after the last snapshot request


class MjpegStream:
    def __init__(self, viewfinder, quality: int = 75, max_width: int = 1280):
        self.viewfinder = viewfinder
        self.quality = int(quality)
        self.max_width = int(max_width)
        self._cond = threading.Condition()
        self.jpeg: Optional[bytes] = None
        self.seq = 0
        self.clients = 0
        self.encoded = 0
        self.encode_ms: deque = deque(maxlen=100)
        self.rate = RateMeter(30, stale_after=2.0)
        self._demand_until = 0.0
        self._stop = threading.Event()
        self._errors = 0
        self._thread = threading.Thread(target=self._run, name="mjpeg-encoder", daemon=True)
        self._thread.start()

    # --- encoder thread -------------------------------------------------------------
    def _wanted(self) -> bool:
        return self.clients > 0 or time.monotonic() < self._demand_until

    def _run(self) -> None:
        seen = -1
        while not self._stop.is_set():
            frame, result, seq = self.viewfinder.wait_newer(seen, timeout=0.5)
            if frame is None or seq == seen:
                continue
            seen = seq
            if not self._wanted():
                continue
            t0 = time.perf_counter()
            try:
                img = self.viewfinder.compose(frame, result, self.max_width)
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if not ok:
                    raise RuntimeError("JPEG encoding failed")
            except Exception:  # a drawing bug must not end the stream for good
                self._errors += 1
                if self._errors <= 3:
                    log.exception("web stream: composing frame %s failed", getattr(frame, "index", "?"))
                continue
            self.encode_ms.append((time.perf_counter() - t0) * 1e3)
            with self._cond:
                self.jpeg = buf.tobytes()
                self.seq += 1
                self.encoded += 1
                self.rate.tick()
                self._cond.notify_all()
            # Not kept while waiting for the next frame: the composed picture (0.9 MB at
            # 640x480) would otherwise be alive while the next one is drawn, and the
            # frame after the loop has moved on.
            frame = result = img = buf = None

    # --- client side ------------------------------------------------------------------
    def next_jpeg(self, after: int, timeout: float = 2.0) -> tuple[int, Optional[bytes]]:
        """The first JPEG newer than sequence ``after`` (waits up to ``timeout``)."""
        with self._cond:
            self._cond.wait_for(lambda: self.seq != after or self._stop.is_set(), timeout)
            return self.seq, self.jpeg

    def snapshot(self, timeout: float = 2.0) -> Optional[bytes]:
        """One current JPEG (wakes the encoder if nobody is streaming)."""
        self._demand_until = time.monotonic() + DEMAND_GRACE_S
        with self._cond:
            after = self.seq
        _, jpeg = self.next_jpeg(after, timeout)
        return jpeg

    def add_client(self) -> None:
        with self._cond:
            self.clients += 1

    def remove_client(self) -> None:
        with self._cond:
            self.clients = max(0, self.clients - 1)

    @property
    def fps(self) -> float:
        return self.rate.fps

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
