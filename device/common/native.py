"""Keeping native libraries' messages off stderr, so each bad input stays one line.

OpenCV's own log (``[ WARN:0@…]``, ``[ERROR:0@…]``) and FFmpeg's (``[mov,mp4 @ …] moov atom
not found``) have switches, set once before the first capture or decode (the user's own
``OPENCV_LOG_LEVEL`` / ``OPENCV_FFMPEG_LOGLEVEL`` win). libpng and libjpeg have none: they
print straight to file descriptor 2, so ``native_stderr_captured`` points fd 2 at a
temporary file while a decoder runs and passes on afterwards only what is not theirs.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading

log = logging.getLogger(__name__)

# What libpng and libjpeg print on their own (libpng's default handlers, libjpeg's
# emit_message); anything else written to stderr meanwhile is passed on.
_NATIVE_PREFIXES = ("libpng ", "Corrupt JPEG data", "Premature end of JPEG", "JPEG datastream",
                    "Invalid JPEG", "Bogus ", "Unsupported JPEG", "Not a JPEG", "Warning: ")
# Above every allowed input.max_image_pixels: OpenCV's own check stays a backstop for the
# formats device.sources.headers does not read, and never refuses what the config allows.
OPENCV_PIXEL_BACKSTOP = 1_000_000_000

_configured = False
_fd_lock = threading.Lock()


def quiet_opencv() -> None:
    """Silence OpenCV's and FFmpeg's logs (idempotent; call before opening a capture)."""
    global _configured
    if _configured:
        return
    _configured = True
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")     # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(OPENCV_PIXEL_BACKSTOP))
    if "OPENCV_LOG_LEVEL" not in os.environ:
        import cv2

        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        except AttributeError:      # the Pi stack's OpenCV has only the top-level setter
            cv2.setLogLevel(0)      # 0 = LOG_LEVEL_SILENT


@contextlib.contextmanager
def native_stderr_captured():
    """While the block runs, fd 2 writes go to a temporary file; libpng/libjpeg lines are
    then dropped (logged at debug) and the rest written to the real stderr."""
    with _fd_lock:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", "replace")
    if text:
        keep = []
        for line in text.splitlines(keepends=True):
            if line.startswith(_NATIVE_PREFIXES):
                log.debug("decoder said: %s", line.rstrip())
            else:
                keep.append(line)
        if keep:
            os.write(2, "".join(keep).encode())
