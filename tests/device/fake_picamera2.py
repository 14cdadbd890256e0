"""A small stand-in for the ``picamera2`` package, mimicking the calls focus-assist uses.

Install it with ``install(monkeypatch)``; it renders frames from a real photograph so the
scored lores Y plane has content. It records the calls made so tests can check them.
"""
from __future__ import annotations

import sys
import types

import cv2
import numpy as np


class FakeRequest:
    def __init__(self, cam: "Picamera2"):
        self.cam = cam
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        return self.cam._array(name)

    def get_metadata(self) -> dict:
        return {"SensorTimestamp": int(self.cam.frame_count * 33_333_333)}

    def release(self) -> None:
        self.released = True
        self.cam.released += 1


class MappedArray:
    """Context manager giving ``.array``, a writable view of a request's stream buffer."""

    def __init__(self, request: FakeRequest, stream: str):
        self.request, self.stream = request, stream

    def __enter__(self):
        self.array = self.request.cam._buffers.setdefault(self.stream, self.request.make_array(self.stream))
        return self

    def __exit__(self, *exc):
        return False


class Picamera2:
    cameras = [{"Model": "imx477", "Num": 0, "Location": 2}]
    instances: list = []
    image: np.ndarray = None   # BGR photo the fake camera "sees"

    @staticmethod
    def global_camera_info():
        return list(Picamera2.cameras)

    def __init__(self, camera_num: int = 0):
        self.camera_num = camera_num
        self.config = None
        self.started = False
        self.closed = False
        self.frame_count = 0
        self.released = 0
        self.overlay = None
        self.post_callback = None
        self.fail_next = 0
        self.options: dict = {}         # picamera2's encoder options ("quality", "compress_level")
        self.mode_switches: list = []   # (still configuration, path, stream name)
        self._buffers: dict = {}
        self.calls: list = []
        Picamera2.instances.append(self)

    def create_preview_configuration(self, main=None, lores=None, **kw):
        self.calls.append(("create_preview_configuration", main, lores))
        return {"main": dict(main or {}), "lores": dict(lores) if lores else None, **kw}

    def create_still_configuration(self, main=None, **kw):
        return {"still": True, "main": dict(main or {}), **kw}

    def configure(self, config):
        self.calls.append(("configure", config))
        self.config = config

    def start(self, *a, **kw):
        self.started = True

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True

    def start_preview(self, *a, **kw):
        self.calls.append(("start_preview", a, kw))

    def set_overlay(self, overlay):
        # picamera2's QT, QTGL and DRM previews copy the layer here (np.copy, order C);
        # the viewfinder relies on that and redraws the same array for the next frame.
        self.overlay = None if overlay is None else np.copy(overlay, order="C")

    def _array(self, name: str) -> np.ndarray:
        cfg = self.config[name]
        w, h = cfg["size"]
        img = cv2.resize(self.image, (w, h), interpolation=cv2.INTER_AREA)
        if cfg.get("format") == "YUV420":
            yuv = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420)  # (h * 3 / 2, w)
            return yuv
        return img

    def capture_request(self, *a, **kw):
        if not self.started:
            raise RuntimeError("camera not started")
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("simulated dequeue timeout")
        self.frame_count += 1
        req = FakeRequest(self)
        if self.post_callback is not None:
            self.post_callback(req)
        return req

    def capture_array(self, name: str = "main"):
        return self.capture_request().make_array(name)

    def capture_file(self, path, name: str = "main", format=None, **kw):
        arr = self._array(name)
        ok, buf = cv2.imencode(".jpg" if str(path).lower().endswith((".jpg", ".jpeg")) else ".png", arr)
        with open(path, "wb") as fh:
            fh.write(buf.tobytes())


    def switch_mode_and_capture_file(self, config, path, name: str = "main", **kw):
        """A still (or, for ``name="raw"``, a DNG) from a mode switch; back to preview after."""
        self.mode_switches.append((config, str(path), name))
        if name == "raw":
            data = b"II*\x00" + b"fake dng"          # a TIFF header, as a DNG starts
        else:
            ok, buf = cv2.imencode(".jpg", self.image, [cv2.IMWRITE_JPEG_QUALITY, int(self.options.get("quality", 90))])
            data = buf.tobytes()
        with open(path, "wb") as fh:
            fh.write(data)


def install(monkeypatch, image: np.ndarray, cameras=None) -> types.ModuleType:
    """Put a fresh fake ``picamera2`` into ``sys.modules`` for the duration of a test."""
    Picamera2.instances = []
    Picamera2.image = image
    Picamera2.cameras = [{"Model": "imx477", "Num": 0}] if cameras is None else cameras
    mod = types.ModuleType("picamera2")
    mod.Picamera2 = Picamera2
    mod.MappedArray = MappedArray
    mod.Preview = types.SimpleNamespace(DRM="DRM", QT="QT", QTGL="QTGL", NULL="NULL")
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    return mod
