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


# Rows of input each band needs beyond its own: 2 for the ring, 1 more because the 3x3
# peak test reads the strengths of the rows next to the band's edge rows.
HALO = 3
# Bands of at least this many pixels (32 rows or more): the frame-sized work arrays
# (ring extremes, excess, strengths) then exist one band at a time, ~0.15 MB each at
# 640x480 instead of 0.9 MB, which a Pi Zero 2 W's 512 MB notices on every 12 MP still.
BAND_PIXELS = 32 * 1024


def band_rows(width: int) -> int:
    return max(32, BAND_PIXELS // max(1, width))


def frame_candidates(image: np.ndarray, threshold: float = 16.0, spread_gain: float = 0.3,
                     rows: int = 0):
    """Candidates of one frame: ``(ys, xs, codes, strength, values)`` arrays, row-major.

    ``codes`` index ``CODES`` (0-2 brighter than the ring in B, G, R; 3-5 darker);
    ``strength`` is the excess over the ring in units of the local limit (> 1);
    ``values`` the pixel's level in that channel.

    The frame is processed in horizontal bands of ``rows`` rows (0: ``band_rows``) with
    ``HALO`` rows of overlap, so every band sees what the whole frame would: the result
    is identical for any band height (``tests/device/defects/test_bands.py``).
    """
    bgr = to_bgr(image)
    h = bgr.shape[0]
    step = rows if rows > 0 else band_rows(bgr.shape[1])
    parts = [_band(bgr, y0, min(h, y0 + step), threshold, spread_gain) for y0 in range(0, h, step)]
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate(col) for col in zip(*parts))


def _band(bgr: np.ndarray, y0: int, y1: int, threshold: float, spread_gain: float):
    """``frame_candidates`` of rows ``y0:y1``, in frame coordinates."""
    h, w = bgr.shape[:2]
    top = max(0, y0 - HALO)
    sub = bgr[top:min(h, y1 + HALO)]
    ring_max = cv2.dilate(sub, RING)
    ring_min = cv2.erode(sub, RING)
    # Saturating uint8 arithmetic in OpenCV: a channel is either above its ring's maximum
    # (up) or below its minimum (down), never both, so their sum is the excess.
    up = cv2.subtract(sub, ring_max)
    down = cv2.subtract(ring_min, sub)
    excess = cv2.add(up, down)
    e0, e1, e2 = cv2.split(excess)
    # The limit is at least ``threshold``, so only pixels beyond it can qualify: a small
    # share of a frame, and the float work below is done for those alone.
    ys, xs = np.nonzero(cv2.max(cv2.max(e0, e1), e2) > threshold)
    spread = (ring_max[ys, xs].astype(np.float32) - ring_min[ys, xs])
    ratio = excess[ys, xs] / (np.float32(threshold) + np.float32(spread_gain) * spread)
    strength = ratio.max(axis=1)
    gy = ys + top
    # Strengths are whole-frame ones from one row beyond the band (the halo's inner row,
    # which the peak test reads); the halo's outer rows saw the band's edge as a border.
    keep = (strength > 1.0) & (gy >= max(MARGIN, y0 - 1)) & (xs >= MARGIN) & \
        (gy < min(h - MARGIN, y1 + 1)) & (xs < w - MARGIN)
    ys, xs, ratio, strength = ys[keep], xs[keep], ratio[keep], strength[keep]
    best = np.zeros(sub.shape[:2], np.float32)
    best[ys, xs] = strength
    peak = strength >= cv2.dilate(best, np.ones((3, 3), np.uint8))[ys, xs]   # strongest in its 3x3
    gy = ys + top
    mine = peak & (gy >= y0) & (gy < y1)
    ys, xs, ratio, strength = ys[mine], xs[mine], ratio[mine], strength[mine]
    ch = ratio.argmax(axis=1)
    codes = np.where(up[ys, xs, ch] > 0, ch, ch + 3)
    values = sub[ys, xs, ch]
    return ys + top, xs, codes, strength, values


def _kind(sign_hot: bool, mean_value: float) -> str:
    if sign_hot:
        return "hot" if mean_value >= 160 else "stuck"
    return "dead" if mean_value <= 60 else "stuck"
