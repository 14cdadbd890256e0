"""File and stream sources: ``video:PATH`` (OpenCV VideoCapture) and ``images:GLOB``."""
from __future__ import annotations

import glob as _glob
import logging
import threading
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from device.errors import InputError, SourceError
from device.common.preprocess import to_bgr, to_grey
from device.sources.base import Frame, FrameSource, now

log = logging.getLogger(__name__)


def read_image(path: str | Path) -> np.ndarray:
    """Read any image OpenCV can (grey, BGR, BGRA, 16-bit); InputError if it cannot."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not an image")
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror})") from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise InputError(f"{p}: not an image OpenCV can decode (corrupt or unsupported format)")
    return img


class ImageSource(FrameSource):
    """Image files in sorted order; every file is a frame, nothing is dropped."""
    live = False

    def __init__(self, pattern: str):
        super().__init__()
        paths = sorted(_glob.glob(pattern))
        if not paths and Path(pattern).is_file():
            paths = [pattern]
        if not paths:
            raise InputError(f"images:{pattern}: no files match")
        self.paths = paths
        self.name = f"images:{pattern}"
        self.path: Optional[str] = None

    def _read(self) -> Optional[Frame]:
        if self._index >= len(self.paths):
            return None
        path = self.paths[self._index]
        img = read_image(path)
        self.path = path
        return Frame(grey=to_grey(img), color=to_bgr(img), timestamp=now(), index=self._next_index())

    def info(self) -> dict:
        return {**super().info(), "files": len(self.paths)}


class VideoFile:
    """Every frame of a video file, in order: ``for index, time_s, bgr in VideoFile(path)``.

    The one reader of recorded video outside the live loop (the defect scan and the video
    report); a file that is missing, unreadable or has no frame is an ``InputError``.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        if not Path(self.path).is_file():
            raise InputError(f"{self.path}: no such file")
        self._cap = cv2.VideoCapture(self.path)
        if not self._cap.isOpened():
            self._cap.release()
            raise InputError(f"{self.path}: cannot be opened as a video (unknown format or damaged header)")
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)   # 0: unknown

    def __iter__(self):
        i = 0
        while True:
            ok, img = self._cap.read()
            if not ok:
                break
            pos = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            t = pos / 1000.0 if pos and pos > 0 else (i / self.fps if self.fps > 0 else float(i))
            yield i, t, to_bgr(img)
            i += 1
        if i == 0:
            raise InputError(f"{self.path}: video has no readable frames")

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> "VideoFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_live_video(path: str) -> bool:
    return path.startswith("/dev/video") or "://" in path or path.isdigit()


class VideoSource(FrameSource):
    """OpenCV VideoCapture: a file (every frame, in order) or a live device / URL.

    For a live device or stream a grabber thread keeps only the newest frame, so slow
    scoring never makes frames pile up in OpenCV's buffer.
    """

    def __init__(self, path: str, timeout_s: float = 5.0):
        super().__init__()
        self.path = path
        self.name = f"video:{path}"
        self.live = _is_live_video(path)
        if not self.live and not Path(path).exists():
            raise InputError(f"video:{path}: no such file")
        target = int(path) if path.isdigit() else path
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            raise InputError(f"video:{path}: cannot be opened as a video")
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._timeout = timeout_s
        self._latest: Optional[np.ndarray] = None
        self._latest_t = 0.0
        self._cond = threading.Condition()
        self._ended = False
        self._thread = None
        if self.live:
            self._thread = threading.Thread(target=self._grab_loop, name="video-grabber", daemon=True)
            self._thread.start()

    def _grab_loop(self) -> None:
        while not self._closed:
            ok, img = self._cap.read()
            with self._cond:
                if not ok:
                    self._ended = True
                    self._cond.notify_all()
                    return
                self._latest, self._latest_t = img, now()
                self._cond.notify_all()

    def _to_frame(self, img: np.ndarray, t: float) -> Frame:
        return Frame(grey=to_grey(img), color=to_bgr(img), timestamp=t, index=self._next_index())

    def _read(self) -> Optional[Frame]:
        if not self.live:
            ok, img = self._cap.read()
            if not ok:
                return None
            ts = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            return self._to_frame(img, ts)
        with self._cond:
            ok = self._cond.wait_for(lambda: self._latest is not None or self._ended, self._timeout)
            if not ok:
                raise SourceError(f"{self.name}: no frame for {self._timeout:.1f} s")
            if self._latest is None:
                return None
            img, t, self._latest = self._latest, self._latest_t, None
        return self._to_frame(img, t)

    def info(self) -> dict:
        return {**super().info(), "fps": self.fps, "frame_count": self.frame_count}

    def _close(self) -> None:
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            # Releasing the capture while the grabber is inside read() can crash OpenCV.
            self._thread.join(timeout=2.0)
        self._cap.release()
