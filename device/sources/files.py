"""File and stream sources: ``video:PATH`` (OpenCV VideoCapture) and ``images:GLOB``."""
from __future__ import annotations

import errno
import glob as _glob
import logging
import os
import stat
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from device.common.native import native_stderr_captured, quiet_opencv
from device.config.inputs import DEFAULT_MAX_IMAGE_PIXELS
from device.errors import InputError, SourceError
from device.sources.headers import claimed_size
from device.common.preprocess import to_bgr, to_grey
from device.sources.base import Frame, FrameSource, now

log = logging.getLogger(__name__)


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file as uint8 or uint16 (grey, BGR or BGRA); InputError, one line, if
    it cannot be.

    The one reader every command uses. Only a regular file is opened (a FIFO would block),
    or ``-`` / ``/dev/stdin`` when stdin is not a terminal. The header's claimed size is
    checked against ``max_pixels`` before decoding (``device.sources.headers``); float and
    32-bit images become uint16 when their values fit, NaN or inf pixels are refused.
    """
    p = Path(path)
    data = _read_bytes(p, max_pixels * _MAX_BYTES_PER_PIXEL + (1 << 20))
    if not data:
        raise InputError(f"{p}: empty file")
    size = claimed_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise InputError(f"{p}: the header claims {size[0]}x{size[1]} pixels, more than the "
                         f"limit of {max_pixels:,} (input.max_image_pixels)")
    quiet_opencv()
    try:
        with native_stderr_captured():
            img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:    # OpenCV's own checks (its pixel limit, broken headers)
        img = None
    if img is None or img.size == 0:
        raise InputError(f"{p}: not an image OpenCV can decode (corrupt or unsupported format)")
    if img.shape[0] * img.shape[1] > max_pixels:   # a format the header reader does not know
        raise InputError(f"{p}: {img.shape[1]}x{img.shape[0]} pixels, more than the limit of "
                         f"{max_pixels:,} (input.max_image_pixels)")
    return _to_integer_depth(img, p)


# 4 channels of float64 is the most any decodable file can hold per pixel.
_MAX_BYTES_PER_PIXEL = 32
_STDIN_NAMES = ("-", "/dev/stdin")


def _read_bytes(p: Path, limit: int) -> bytes:
    """The bytes of a regular file (or piped stdin); InputError naming what is wrong."""
    if str(p) in _STDIN_NAMES:
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError(f"{p}: stdin is a terminal; pipe an image into it")
        data = sys.stdin.buffer.read(limit + 1)
    else:
        check_regular_file(p, "an image")
        try:
            # O_NONBLOCK: should it have become a FIFO since the stat, open must not wait.
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    raise InputError(f"{p}: is not a regular file")
                data = fh.read(limit + 1)
        except OSError as exc:
            raise InputError(f"{p}: {_os_reason(exc)}") from None
    if len(data) > limit:
        raise InputError(f"{p}: larger than any image within the pixel limit")
    return data


def check_regular_file(p: Path, what: str = "a file") -> None:
    """InputError unless ``p`` is a regular file: a FIFO, device or socket would block or
    never end, and a symlink loop or unsearchable folder is named as such."""
    if "\x00" in str(p):
        raise InputError(f"{str(p)!r}: a path cannot contain a null byte")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        what_is = "broken symlink" if os.path.islink(p) else "no such file"
        raise InputError(f"{p}: {what_is}") from None
    except OSError as exc:
        raise InputError(f"{p}: {_os_reason(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{p}: is a folder, not {what}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{p}: is a {_kind(st.st_mode)}, not a regular file")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.EACCES:
        return "permission denied (the file, or a folder on its path, cannot be read or searched)"
    return f"cannot read ({exc.strerror or exc.__class__.__name__})"


def _to_integer_depth(img: np.ndarray, p: Path) -> np.ndarray:
    """uint8/uint16 pass; other depths become uint16 when their values fit, else InputError."""
    if img.dtype in (np.uint8, np.uint16):
        return img
    if img.dtype.kind not in "iuf":
        raise InputError(f"{p}: unsupported pixel type {img.dtype}")
    if img.dtype.kind == "f" and not np.isfinite(img).all():
        raise InputError(f"{p}: {img.dtype} image holds NaN or infinite pixel values")
    lo, hi = float(img.min()), float(img.max())
    if img.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:   # the usual float convention
        return np.rint(img * 65535.0).astype(np.uint16)
    if lo >= 0 and hi <= 65535:
        return np.rint(img).astype(np.uint16) if img.dtype.kind == "f" else img.astype(np.uint16)
    raise InputError(f"{p}: {img.dtype} pixel values span {lo:g}..{hi:g}; only 0..1 (float) or "
                     "0..65535 can be read: convert it to 8 or 16 bit")


class ImageSource(FrameSource):
    """Image files in sorted order; every file is a frame, nothing is dropped."""
    live = False

    def __init__(self, pattern: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
        super().__init__()
        paths = sorted(_glob.glob(pattern))
        if not paths and Path(pattern).is_file():
            paths = [pattern]
        if not paths:
            raise InputError(f"images:{pattern}: no files match")
        self.paths = paths
        self.name = f"images:{pattern}"
        self.path: Optional[str] = None
        self.max_pixels = max_pixels
        self.skipped = 0
        self._file = 0

    def _read(self) -> Optional[Frame]:
        # As the batch commands do: an unreadable file is one warning line, the run goes on.
        while self._file < len(self.paths):
            path = self.paths[self._file]
            self._file += 1
            try:
                img = read_image(path, self.max_pixels)
            except InputError as exc:
                self.skipped += 1
                log.warning("skipped: %s", exc)
                continue
            self.path = path
            return Frame(grey=to_grey(img), color=to_bgr(img), timestamp=now(),
                         index=self._next_index())
        if self.skipped == len(self.paths):
            raise InputError(f"{self.name}: none of the {len(self.paths)} files could be read")
        return None

    def info(self) -> dict:
        return {**super().info(), "files": len(self.paths), "skipped": self.skipped}


class VideoFile:
    """Every frame of a video file, in order: ``for index, time_s, bgr in VideoFile(path)``.

    The one reader of recorded video outside the live loop (the defect scan and the video
    report); a file that is missing, unreadable or has no frame is an ``InputError``.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        check_regular_file(Path(self.path), "a video")
        quiet_opencv()
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

    def __init__(self, path: str, timeout_s: float = 5.0, *, backoff_s: float = 0.5,
                 backoff_max_s: float = 4.0, opener: Callable = cv2.VideoCapture,
                 wait: Optional[Callable[[float], bool]] = None):
        super().__init__()
        self.path = path
        self.name = f"video:{path}"
        self.live = _is_live_video(path)
        if not self.live:
            try:
                check_regular_file(Path(path), "a video")
            except InputError as exc:
                raise InputError(f"video:{exc}") from None
        quiet_opencv()
        self._target = int(path) if path.isdigit() else path
        self._opener = opener
        self._cap = opener(self._target)
        if not self._cap.isOpened():
            self._cap.release()
            raise InputError(f"video:{path}: cannot be opened as a video")
        self._backoff = (backoff_s, backoff_max_s)
        self._stopping = threading.Event()
        # Injected in tests; returns True when the source was closed while waiting.
        self._wait = wait or self._stopping.wait
        self.reopens = 0
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
        lost = 0
        while not self._closed:
            ok, img = self._cap.read()
            if ok:
                lost = 0
                with self._cond:
                    self._latest, self._latest_t = img, now()
                    self._cond.notify_all()
                continue
            # A camera or stream that drops is reopened, with backoff, until closed; the
            # frame wait in _read reports the gap as a fault meanwhile.
            lost += 1
            delay = min(self._backoff[1], self._backoff[0] * 2.0 ** min(lost - 1, 30))
            log.warning("%s: no frame from the camera; reopening in %.1f s (attempt %d)",
                        self.name, delay, lost)
            if self._wait(delay) or self._closed:
                break
            cap = self._opener(self._target)
            if cap.isOpened():
                old, self._cap = self._cap, cap
                old.release()
                self.reopens += 1
            else:
                cap.release()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _to_frame(self, img: np.ndarray, t: float) -> Frame:
        return Frame(grey=to_grey(img), color=to_bgr(img), timestamp=t, index=self._next_index())

    def _read(self) -> Optional[Frame]:
        if not self.live:
            ok, img = self._cap.read()
            if not ok:
                if self._index == 0:    # e.g. a text file OpenCV's MJPEG reader "opened"
                    raise InputError(f"{self.name}: no readable frames (not a video, or damaged)")
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
        return {**super().info(), "fps": self.fps, "frame_count": self.frame_count,
                **({"reopens": self.reopens} if self.live else {})}

    def _close(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            # Releasing the capture while the grabber is inside read() can crash OpenCV.
            self._thread.join(timeout=2.0)
        self._cap.release()
