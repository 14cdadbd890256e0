"""Star mode in the viewfinder (issue 16): the stars of every frame, a minimum hold, the
status line and the live V-curve, for the HUD, the circles on the overlay and
``/api/status``.

A loop sink like the others: ``on_frame`` measures the frame's stars (``measure_stars``
through the autofocus's own ``StarSize``, so "no stars found" and "clouds: star count
fell from N to M" mean the same here as in a star autofocus) and keeps what the
viewers read through ``status()`` and ``circles()``. The V-curve pairs the star size with
the lens position when the run has a motor or a simulated lens, else with the frame
index; turning the ring by hand through focus draws the V.
"""
from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

from device.config.stars import StarsConfig
from device.lens.vcurve import StarSize
from device.loop.sink import Sink

VCURVE_POINTS = 240     # a few passes through focus at 30 fps


@dataclass(frozen=True)
class StarStatus:
    """What star mode shows; sizes in scored-frame pixels, NaN when no star was measured.
    ``vcurve`` is ``((lens position or frame index, HFR), ...)``, oldest first."""
    measure: str
    hfr_px: float
    fwhm_px: float
    count: int
    min_hfr_px: float
    status: str
    vcurve: tuple = ()
    x_is_lens: bool = False

    def to_json(self) -> dict:
        """The ``"stars"`` object of ``/api/status`` (NaN becomes null in ``jsonio``)."""
        return {"measure": self.measure, "hfr_px": self.hfr_px, "fwhm_px": self.fwhm_px,
                "count": self.count, "min_hfr_px": self.min_hfr_px, "status": self.status,
                "vcurve": [list(p) for p in self.vcurve],
                "vcurve_x": "lens_position" if self.x_is_lens else "frame"}


class StarMonitor(Sink):
    """Measures the stars of each frame; ``reset()`` (the viewfinder's peak reset) clears
    the minimum hold, the V-curve and the clouds reference."""

    def __init__(self, measure: str = "hfr", cfg: StarsConfig = StarsConfig(), roi=None, *,
                 lens_position: Optional[Callable[[], float]] = None,
                 max_points: int = VCURVE_POINTS):
        self.measure = measure
        self._size = StarSize(measure, cfg, roi)
        self._lens = lens_position
        self._lock = threading.Lock()
        self._points: deque = deque(maxlen=max_points)
        self._min = math.nan
        self._last = None
        self._status = "waiting for a frame"

    def on_frame(self, frame, result) -> None:
        value = self._size(frame, result)
        field = self._size.last
        x = float(self._lens()) if self._lens is not None else float(frame.index)
        with self._lock:
            self._last = field
            if math.isfinite(value):
                self._status = "ok"
                if math.isfinite(field.hfr):
                    self._points.append((round(x, 2), round(field.hfr, 3)))
                    if not field.hfr >= self._min:     # NaN min: the first star size
                        self._min = field.hfr
            else:
                self._status = self._size.why()

    def reset(self) -> None:
        with self._lock:
            self._size.reset()
            self._points.clear()
            self._min = math.nan

    def status(self) -> StarStatus:
        with self._lock:
            f = self._last
            return StarStatus(measure=self.measure,
                              hfr_px=f.hfr if f is not None else math.nan,
                              fwhm_px=f.fwhm if f is not None else math.nan,
                              count=f.count if f is not None else 0,
                              min_hfr_px=self._min, status=self._status,
                              vcurve=tuple(self._points), x_is_lens=self._lens is not None)

    def circles(self) -> tuple:
        """``((x, y, radius), ...)`` of the last frame's measured stars, scored-frame
        pixels: a circle twice the star's HFR (at least 4 px) around each."""
        with self._lock:
            f = self._last
        if f is None:
            return ()
        return tuple((s.x, s.y, max(4.0, 2.0 * s.hfr) if math.isfinite(s.hfr) else 4.0)
                     for s in f.stars)

    def stats(self) -> dict:
        s = self.status()
        return {"stars": s.count, "star_hfr_px": s.hfr_px}
