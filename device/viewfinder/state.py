"""The viewfinder's shared state: one object per run, a loop sink, drawn from by the web
viewfinder and the Pi preview.

``on_frame`` (the loop thread) only does cheap bookkeeping: peak hold, the focus history
for the sparkline, fps, and handing the newest frame to whoever waits for it. Analysis
(peaking) and drawing happen on the consumers' own threads through ``layers`` /
``compose`` / ``overlay_rgba``; the peaking analysis is memoised per frame so several
consumers share it and the running threshold advances once per frame.

Captures stay clean: nothing here ever writes into ``frame.color`` or ``frame.grey``;
``compose`` draws on a copy.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Optional

import cv2
import numpy as np

from device.common.colour import parse_colour
from device.common.rate import RateMeter
from device.config import OverlayConfig
from device.loop.result import FrameResult
from device.loop.sink import Sink
from device.overlay import (ELEMENTS, HudInfo, Layers, PeakHold, PeakingParams, PeakingState,
                      RgbaLayer, RunningPeak, StarLine, Style, compose_bgr, draw_all, heat_values,
                      peaking_mask)

if TYPE_CHECKING:
    from device.capture.sink import CaptureSink
    from device.lens.autofocus import Autofocus
    from device.optics.live import LiveInspector
    from device.scoring.stars_live import StarMonitor

log = logging.getLogger(__name__)


class Viewfinder(Sink):
    """``autofocus`` and ``capture`` (when the run has them) feed the HUD's AF state, motor
    position and capture count."""

    def __init__(self, cfg: OverlayConfig = OverlayConfig(), history_s: float = 10.0, *,
                 autofocus: "Optional[Autofocus]" = None, capture: "Optional[CaptureSink]" = None,
                 stars: "Optional[StarMonitor]" = None, inspector: "Optional[LiveInspector]" = None):
        self.autofocus = autofocus
        self.capture = capture
        self.stars = stars
        self.inspector = inspector      # the web page's /api/inspect
        self.history_s = history_s
        self.peak = PeakHold()
        self.history: deque = deque()        # (monotonic t, focus)
        self.frames = 0
        self.rate = RateMeter(30)
        self._cond = threading.Condition()
        self._latest: Optional[tuple] = None  # (frame, result)
        self.seq = 0
        self._closed = False
        self._analysis_lock = threading.Lock()
        self._memo: tuple = (None, None)
        self._rgba_lock = threading.Lock()
        self._rgba: Optional[RgbaLayer] = None
        self.toggles: dict = {}
        self.configure(cfg)

    # --- configuration and controls -------------------------------------------------
    def configure(self, cfg: OverlayConfig) -> None:
        self.cfg = cfg
        self.toggles = {name: bool(getattr(cfg, name)) for name in ELEMENTS}
        self.style = Style(parse_colour(cfg.peaking_colour), cfg.heatmap_alpha,
                           cfg.zoom_factor, cfg.zoom_size)
        self.params = PeakingParams(cfg.peaking_share, cfg.peaking_floor, cfg.peaking_noise_k)
        self._peaking = PeakingState(level=RunningPeak(cfg.peaking_memory_s))
        self._heat_level = RunningPeak(cfg.peaking_memory_s)

    def reconfigure(self, cfg) -> None:
        """SIGHUP: the config's overlay section wins over runtime toggles."""
        self.configure(cfg.overlay)

    def set_toggles(self, changes: dict) -> dict:
        """Switch elements on or off; unknown names raise KeyError, non-bools TypeError."""
        for name, on in changes.items():
            if name not in ELEMENTS:
                raise KeyError(name)
            if not isinstance(on, bool):
                raise TypeError(f"{name} must be true or false")
        self.toggles = {**self.toggles, **changes}   # one assignment: readers see old or new
        return dict(self.toggles)

    def reset_peak(self) -> None:
        """Forget the held peak (and the peaking and heat map running peaks with it)."""
        self.peak.reset()
        if self.stars is not None:
            self.stars.reset()
        with self._analysis_lock:
            self._peaking.level.reset()
            self._heat_level.reset()

    # --- the sink ---------------------------------------------------------------------
    def on_frame(self, frame, result: FrameResult) -> None:
        t = time.monotonic()
        self.peak.update(result.focus)
        self.history.append((t, float(result.focus)))
        while self.history and t - self.history[0][0] > self.history_s:
            self.history.popleft()
        self.rate.tick(t)
        self.frames += 1
        with self._cond:
            self._latest = (frame, result)
            self.seq += 1
            self._cond.notify_all()

    @property
    def fps(self) -> float:
        return self.rate.fps

    def latest(self) -> tuple:
        """(frame, result, seq) of the newest frame, or (None, None, seq)."""
        with self._cond:
            fr = self._latest or (None, None)
            return fr[0], fr[1], self.seq

    def wait_newer(self, seq: int, timeout: float = 0.5) -> tuple:
        """Block until a frame newer than ``seq`` arrives (or timeout / close)."""
        with self._cond:
            self._cond.wait_for(lambda: self.seq != seq or self._closed, timeout)
            fr = self._latest or (None, None)
            return fr[0], fr[1], self.seq

    def _close(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # --- what to draw ---------------------------------------------------------------
    def hud_info(self, result: FrameResult) -> HudInfo:
        af = self.autofocus.status() if self.autofocus is not None else None
        return HudInfo(
            focus=result.focus,
            peak=self.peak.peak or None,
            label=result.label,
            sharp_prob=result.sharp_prob,
            verdict_by=result.verdict.decided_by if result.verdict is not None else None,
            autofocus=af.state if af is not None else None,
            motor=str(af.position) if af is not None else None,
            captures=self.capture.count if self.capture is not None else None,
            fps=self.fps,
            stars=self._star_line(),
        )

    def _star_line(self) -> Optional[StarLine]:
        if self.stars is None:
            return None
        s = self.stars.status()
        return StarLine(s.hfr_px, s.fwhm_px, s.count, s.min_hfr_px, s.status)

    def stars_status(self) -> Optional[dict]:
        """``/api/status``'s ``"stars"``: null when star mode is off."""
        return self.stars.status().to_json() if self.stars is not None else None

    def layers(self, frame, result: FrameResult) -> Layers:
        """The overlay layers for one frame (peaking analysed once per frame, memoised)."""
        on = self.toggles
        with self._analysis_lock:
            key, memo = self._memo
            if key is not frame:
                memo = {}
                self._memo = (frame, memo)
            t = float(frame.timestamp) if frame.timestamp else time.monotonic()
            if on["peaking"] and "peaking" not in memo:
                memo["peaking"] = peaking_mask(frame.grey, self._peaking, t, self.params,
                                               shared=result.working)
            if on["heatmap"] and "heat" not in memo:
                memo["heat"] = heat_values(result.tile_map, result.cnn.tile_map if result.cnn else None,
                                           self._heat_level, t, self.cfg.heatmap_source)
        return Layers(
            src_shape=frame.grey.shape[:2],
            peaking=memo.get("peaking") if on["peaking"] else None,
            heat=memo.get("heat") if on["heatmap"] else None,
            roi=result.roi if on["roi"] else None,
            defects=result.defects if on["defects"] else None,
            zoom=on["zoom"],
            hud=self.hud_info(result) if on["hud"] else None,
            stars=self.stars.circles() if on["stars"] and self.stars is not None else None,
        )

    def compose(self, frame, result: FrameResult, max_width: Optional[int] = None) -> np.ndarray:
        """A new BGR picture: the display frame (scaled to ``max_width``) with the overlay."""
        picture = frame.display
        if max_width and picture.shape[1] > max_width:
            h = max(1, round(picture.shape[0] * max_width / picture.shape[1]))
            picture = cv2.resize(picture, (max_width, h), interpolation=cv2.INTER_AREA)
        # Never draw into the frame: captures stay clean.
        return compose_bgr(picture, self.layers(frame, result), self.style)

    def overlay_rgba(self, frame, result: FrameResult, size: tuple[int, int]) -> np.ndarray:
        """A transparent RGBA layer of ``size`` = (w, h) for ``Picamera2.set_overlay``.

        The layer is kept and reused by the next call (see ``RgbaLayer``): hand it to
        ``set_overlay``, which copies it, or copy it before calling again."""
        layers = self.layers(frame, result)
        # A grey-only source: the inset converts its small crop, not the whole frame.
        picture = (frame.grey if frame.color is None else frame.color) if layers.zoom else None
        size = (int(size[0]), int(size[1]))
        with self._rgba_lock:
            if self._rgba is None or self._rgba.size != size:
                self._rgba = RgbaLayer(size)
            return self._rgba.render(layers, picture, self.style)

    def draw_into(self, array: np.ndarray, frame, result: FrameResult) -> None:
        """Draw the overlay into a 3-channel BGR buffer in place (``post_callback``)."""
        draw_all(array, self.layers(frame, result), None, self.style)

    def history_points(self, max_points: int = 300) -> list:
        """[[seconds ago, focus], ...] oldest first, thinned to ``max_points``."""
        pts = list(self.history)
        if not pts:
            return []
        step = max(1, len(pts) // max_points)
        now = pts[-1][0]
        return [[round(t - now, 3), round(v, 4)] for t, v in pts[::step]]

    def snapshot_state(self) -> dict:
        return {"overlay": dict(self.toggles), "peak": self.peak.peak,
                "style": dataclasses.asdict(self.style)}
