"""The Raspberry Pi camera through picamera2: the only module that imports picamera2.

picamera2 comes from apt on the Pi and is imported inside functions, so this module is
importable (and testable with a fake ``picamera2`` in ``sys.modules``) anywhere.
Scoring uses the grey Y plane of the small ``lores`` YUV420 stream; the ``main`` stream
(RGB888, which numpy sees as BGR) is what is displayed and captured.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

from device.config import PicameraConfig
from device.errors import SourceError
from device.sources.base import Frame, FrameSource

log = logging.getLogger(__name__)


def camera_available() -> tuple[bool, str]:
    """(usable, why): whether picamera2 imports and reports at least one camera."""
    try:
        from picamera2 import Picamera2  # noqa: WPS433 - lazy on purpose
    except Exception as exc:  # ImportError, or libcamera missing underneath
        return False, f"picamera2 is not importable ({exc.__class__.__name__}: {exc})"
    try:
        cameras = Picamera2.global_camera_info()
    except Exception as exc:
        return False, f"picamera2 could not list cameras ({exc})"
    if not cameras:
        return False, "picamera2 found no camera attached"
    model = cameras[0].get("Model", "camera")
    return True, f"picamera2 found {len(cameras)} camera(s), using {model}"


class Picamera2Source(FrameSource):
    live = True
    name = "picamera2"

    def __init__(self, cfg: PicameraConfig = PicameraConfig(), camera_num: int = 0):
        super().__init__()
        from picamera2 import Picamera2

        self.cfg = cfg
        self.lock = threading.Lock()   # the camera is shared with capture and overlay code
        self.picam2 = Picamera2(camera_num)
        config = self.picam2.create_preview_configuration(
            main={"size": tuple(cfg.main_size), "format": "RGB888"},
            lores={"size": tuple(cfg.lores_size), "format": "YUV420"},
        )
        self.picam2.configure(config)
        self.picam2.start()
        log.info("picamera2 started: main %sx%s, lores %sx%s", *cfg.main_size, *cfg.lores_size)

    def _read(self) -> Optional[Frame]:
        w, h = self.cfg.lores_size
        with self.lock:
            try:
                request = self.picam2.capture_request()
            except Exception as exc:
                raise SourceError(f"picamera2: capture failed ({exc})") from exc
            try:
                lores = request.make_array("lores")
                main = request.make_array("main")
                meta = request.get_metadata() or {}
            finally:
                request.release()
        if lores is None or lores.shape[0] < h:
            raise SourceError("picamera2: lores frame missing or too small")
        grey = lores[:h, :w].copy()
        ts = meta.get("SensorTimestamp")
        t = ts / 1e9 if ts else 0.0
        color = main[:, :, :3] if main is not None and main.ndim == 3 else None
        return Frame(grey=grey, color=color, timestamp=t, index=self._next_index())

    def capture_still(self, path, fmt: str, jpeg_quality: int = 90) -> None:
        """A full-resolution still (``fmt`` "jpeg"/"png") or the raw sensor data ("dng")
        into ``path``; the stream is paused for the mode switch and resumes after."""
        with self.lock:
            if fmt == "dng":
                still = self.picam2.create_still_configuration(raw={})
                self.picam2.switch_mode_and_capture_file(still, str(path), name="raw")
            else:
                self.picam2.options["quality"] = int(jpeg_quality)
                still = self.picam2.create_still_configuration()
                self.picam2.switch_mode_and_capture_file(still, str(path), name="main")

    # The Pi preview's hooks (device.viewfinder.preview): drawn into, or layered over, the
    # camera's own preview window.
    def start_preview(self, backend: str, width: int, height: int) -> None:
        """A preview window (``backend`` QTGL, QT or DRM) in place of the null preview."""
        from picamera2 import Preview

        with self.lock:
            if getattr(self.picam2, "_preview", None):
                self.picam2.stop_preview()
            self.picam2.start_preview(getattr(Preview, backend), width=width, height=height)

    def set_post_callback(self, draw) -> None:
        """``draw(bgr_array)`` on every request's ``main`` buffer (None: stop drawing)."""
        if draw is None:
            self.picam2.post_callback = None
            return
        from picamera2 import MappedArray

        def callback(request) -> None:
            with MappedArray(request, "main") as m:
                draw(m.array)
        self.picam2.post_callback = callback

    def set_overlay(self, rgba) -> None:
        self.picam2.set_overlay(rgba)

    def info(self) -> dict:
        return {**super().info(), "main_size": list(self.cfg.main_size),
                "lores_size": list(self.cfg.lores_size)}

    def _close(self) -> None:
        with self.lock:
            try:
                self.picam2.stop()
            finally:
                self.picam2.close()
