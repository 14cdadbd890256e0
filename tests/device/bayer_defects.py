"""Test helper: camera-like frames with defective photosites, independent of ``train``.

A defect is set in the RGGB Bayer mosaic (one photosite), then the mosaic is
demosaiced and JPEG-compressed, so the defect reaches the tests as the small coloured
blob a real camera produces, not as a clean single pixel.
"""
from __future__ import annotations

import cv2
import numpy as np

LEVELS = {"dead": 0, "hot": 255, "stuck": 200}


def mosaic(bgr: np.ndarray) -> np.ndarray:
    """BGR -> RGGB mosaic: R at (even, even), G at the two mixed sites, B at (odd, odd)."""
    raw = np.empty(bgr.shape[:2], np.uint8)
    raw[0::2, 0::2] = bgr[0::2, 0::2, 2]
    raw[0::2, 1::2] = bgr[0::2, 1::2, 1]
    raw[1::2, 0::2] = bgr[1::2, 0::2, 1]
    raw[1::2, 1::2] = bgr[1::2, 1::2, 0]
    return raw


def camera_frame(bgr: np.ndarray, defects=(), jpeg_quality: int = 90) -> np.ndarray:
    """``defects``: iterable of (x, y, kind). Returns the demosaiced, JPEG'd BGR frame."""
    raw = mosaic(bgr)
    for x, y, kind in defects:
        raw[y, x] = LEVELS[kind]
    out = cv2.cvtColor(raw, cv2.COLOR_BayerBG2BGR)   # OpenCV's name for RGGB
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def panning_sequence(base: np.ndarray, n: int, size=(480, 640), step=(13, 29), defects=()):
    """``n`` crops of ``base`` sliding by ``step`` (dy, dx): the scene moves, the sensor does not."""
    h, w = size
    frames = []
    for i in range(n):
        y = (i * step[0]) % (base.shape[0] - h)
        x = (i * step[1]) % (base.shape[1] - w)
        frames.append(camera_frame(np.ascontiguousarray(base[y:y + h, x:x + w]), defects))
    return frames
