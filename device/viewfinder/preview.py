"""The overlay on a Pi's own display, through the running ``Picamera2Source``.

Two ways, chosen by ``overlay.preview``:

* ``overlay``: ``Picamera2.set_overlay(rgba)`` on a QTGL, QT or DRM preview window. The
  preview composites it; nothing reaches encoded streams or captures. A worker thread
  renders the RGBA layer (window-sized) for the newest frame, so the loop never waits.
* ``post_callback``: draw into the ``main`` stream with ``MappedArray`` in picamera2's
  ``post_callback``, which runs after the request was handed to the application and
  before encoders and the preview. Use it when ``set_overlay`` is unavailable (DRM
  overlay planes fail on some Pi 5 displays) or an encoder should carry the overlay.
  The burn-in touches the request's own buffer: a picture copied from the same request by
  the application may race with it, so captures must come from a separate still request
  (``switch_mode_and_capture_*`` or a dedicated ``capture_request``), never from that
  buffer. ``burns_in_main`` tells the capture feature.

Every picamera2 call goes through the source (``device.sources.picam``), the one module
that speaks to picamera2.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Optional

from device.loop.sink import Sink

if TYPE_CHECKING:
    from device.sources.picam import Picamera2Source
    from device.viewfinder.state import Viewfinder

log = logging.getLogger(__name__)


def pick_backend(name: str, environ=None) -> str:
    """``auto`` -> QTGL on a local X/Wayland display, QT on a remote one, else DRM."""
    if name != "auto":
        return name.upper()
    env = os.environ if environ is None else environ
    display = env.get("DISPLAY")
    if env.get("WAYLAND_DISPLAY") or (display and display.startswith(":")):
        return "QTGL"
    if display:
        return "QT"
    return "DRM"


class PicameraPreview(Sink):
    """A loop sink showing the viewfinder overlay on the Pi's display."""

    def __init__(self, source: "Picamera2Source", viewfinder: "Viewfinder", mode: str = "overlay",
                 backend: str = "auto", size: tuple[int, int] = (1024, 768)):
        if mode not in ("overlay", "post_callback"):
            raise ValueError(f"unknown preview mode {mode!r}")
        self.source = source
        self.viewfinder = viewfinder
        self.mode = mode
        self.size = (int(size[0]), int(size[1]))
        self.burns_in_main = mode == "post_callback"
        self.updates = 0
        self._errors = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if mode == "overlay":
            self._start_window(pick_backend(backend))
            self._thread = threading.Thread(target=self._run, name="preview-overlay", daemon=True)
            self._thread.start()
        else:
            source.set_post_callback(self._draw)

    # --- set_overlay ------------------------------------------------------------------
    def _start_window(self, backend: str) -> None:
        """Swap the source's null preview for a window of ``self.size``."""
        w, h = self.size
        try:
            self.source.start_preview(backend, w, h)
        except Exception as exc:  # no display, or DRM busy: the web viewfinder still works
            log.warning("preview: cannot open a %s window (%s); use overlay.preview = "
                        "\"post_callback\" or the web viewfinder", backend, exc)

    def _run(self) -> None:
        seen = -1
        vf = self.viewfinder
        while not self._stop.is_set():
            frame, result, seq = vf.wait_newer(seen, timeout=0.5)
            if frame is None or seq == seen:
                continue
            seen = seq
            try:
                # The layer is redrawn in place next frame: set_overlay copies it (QT, QTGL
                # and DRM previews all do), so it can go straight in.
                rgba = vf.overlay_rgba(frame, result, self.size)
                self.source.set_overlay(rgba)
                self.updates += 1
            except Exception:
                self._report()

    # --- post_callback --------------------------------------------------------------
    def _draw(self, arr) -> None:
        """Runs on picamera2's camera thread: must be quick and must never raise."""
        frame, result, _ = self.viewfinder.latest()
        if frame is None or self._stop.is_set():
            return
        try:
            if arr is None or arr.ndim != 3 or arr.shape[2] != 3:
                raise ValueError("post_callback needs a 3-channel main stream (RGB888)")
            self.viewfinder.draw_into(arr, frame, result)
            self.updates += 1
        except Exception:
            self._report()

    def _report(self) -> None:
        self._errors += 1
        if self._errors <= 3:
            log.exception("preview: drawing the overlay failed")

    # --- sink -------------------------------------------------------------------------
    # frames arrive through the shared Viewfinder: no on_frame here

    def stats(self) -> dict:
        return {"preview_updates": self.updates}

    def _close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        try:
            if self.mode == "post_callback":
                self.source.set_post_callback(None)
            else:
                self.source.set_overlay(None)
        except Exception:
            log.debug("preview: clearing the overlay failed", exc_info=True)
