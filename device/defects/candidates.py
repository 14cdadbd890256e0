"""Pixel-defect candidates in one frame (persistence over frames: ``device.defects.persistence``).

Single frame (``frame_candidates``): the rule ISPs use for dynamic defect correction,
made scene-aware. A pixel is a candidate when, in one colour channel, it lies above
the maximum (or below the minimum) of the 16-pixel ring at distance 2 around it by
``threshold + spread_gain * ring range``, and is the strongest such pixel in its 3x3.
The ring skips the 3x3 core because a demosaiced photosite defect is a ~3x3 blob; the
range term keeps busy texture from qualifying. On its own this still flags hundreds of
texture points per megapixel in real photographs (see bench/bench_defects.py): a single
frame cannot tell a stuck photosite from a glint. Persistence can.
"""
from __future__ import annotations

import cv2
import numpy as np

from device.common.preprocess import to_bgr

# The 16-pixel ring at distance 2 (a 5x5 square minus its 3x3 core).
RING = np.ones((5, 5), np.uint8)
RING[1:4, 1:4] = 0
MARGIN = 2          # demosaicers leave garbage on the outermost rows and columns
SATURATED = 230.0   # 0..255: a pixel stuck at full scale is reported as hot
CODES = ("+b", "+g", "+r", "-b", "-g", "-r")   # sign and channel of a candidate


def frame_candidates(image: np.ndarray, threshold: float = 16.0, spread_gain: float = 0.3):
    """Candidates of one frame: ``(ys, xs, codes, strength, values)`` arrays.

    ``codes`` index ``CODES`` (0-2 brighter than the ring in B, G, R; 3-5 darker);
    ``strength`` is the excess over the ring in units of the local limit (> 1);
    ``values`` the pixel's level in that channel.
    """
    bgr = to_bgr(image)
    ring_max = cv2.dilate(bgr, RING)
    ring_min = cv2.erode(bgr, RING)
    # Saturating uint8 arithmetic in OpenCV: a channel is either above its ring's maximum
    # (up) or below its minimum (down), never both, so their sum is the excess.
    up = cv2.subtract(bgr, ring_max)
    down = cv2.subtract(ring_min, bgr)
    excess = cv2.add(up, down)
    e0, e1, e2 = cv2.split(excess)
    # The limit is at least ``threshold``, so only pixels beyond it can qualify: a small
    # share of a frame, and the float work below is done for those alone.
    ys, xs = np.nonzero(cv2.max(cv2.max(e0, e1), e2) > threshold)
    spread = (ring_max[ys, xs].astype(np.float32) - ring_min[ys, xs])
    ratio = excess[ys, xs] / (np.float32(threshold) + np.float32(spread_gain) * spread)
    strength = ratio.max(axis=1)
    keep = (strength > 1.0) & (ys >= MARGIN) & (xs >= MARGIN) & \
        (ys < bgr.shape[0] - MARGIN) & (xs < bgr.shape[1] - MARGIN)
    ys, xs, ratio, strength = ys[keep], xs[keep], ratio[keep], strength[keep]
    best = np.zeros(bgr.shape[:2], np.float32)
    best[ys, xs] = strength
    peak = strength >= cv2.dilate(best, np.ones((3, 3), np.uint8))[ys, xs]   # strongest in its 3x3
    ys, xs, ratio, strength = ys[peak], xs[peak], ratio[peak], strength[peak]
    ch = ratio.argmax(axis=1)
    codes = np.where(up[ys, xs, ch] > 0, ch, ch + 3)
    values = bgr[ys, xs, ch]
    return ys, xs, codes, strength, values


def _kind(sign_hot: bool, mean_value: float) -> str:
    if sign_hot:
        return "hot" if mean_value >= 160 else "stuck"
    return "dead" if mean_value <= 60 else "stuck"
