"""Render focus sweeps of a flat, all-sharp real photo through a tilted or curved focal
surface: the ground truth for the optics inspector's tests.

Each pixel's best-focus frame is ``centre + tilt_x * x / 2 + tilt_y * y / 2 +
bowl * (1 - (x^2 + y^2) / 2)`` with ``x``, ``y`` from -1 (left, top edge) to +1 (right,
bottom edge): so ``tilt_x`` is the right edge minus the left edge and ``bowl`` the centre
minus the corners, the inspector's own definitions. A pixel's defocus blur in frame ``k``
is a pillbox (``device.common.optics``, in linear light) of radius ``px_per_frame *
|k - best|``; a spatially varying blur is rendered by blending, per pixel, the two nearest
of a stack of uniformly blurred copies.
"""
from __future__ import annotations

import numpy as np

from device.common.optics import convolve, disc_psf, linear_to_srgb, quantise_u8, srgb_to_linear

LEVEL_PX = 0.5     # spacing of the blur stack's radii


def best_focus_map(shape, centre: float, tilt_x: float = 0.0, tilt_y: float = 0.0,
                   bowl: float = 0.0) -> np.ndarray:
    h, w = shape
    x = (np.arange(w) + 0.5) / w * 2 - 1
    y = (np.arange(h) + 0.5) / h * 2 - 1
    xx, yy = np.meshgrid(x, y)
    return centre + tilt_x * xx / 2 + tilt_y * yy / 2 + bowl * (1 - (xx * xx + yy * yy) / 2)


def render_sweep(photo_u8: np.ndarray, frames: int, centre: float, *, tilt_x: float = 0.0,
                 tilt_y: float = 0.0, bowl: float = 0.0, px_per_frame: float = 1.0,
                 noise: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    """``frames`` grey uint8 frames of ``photo_u8`` (grey), in lens order."""
    lin = srgb_to_linear(photo_u8)
    best = best_focus_map(lin.shape, centre, tilt_x, tilt_y, bowl)
    radius = px_per_frame * np.abs(np.arange(frames)[:, None, None] - best[None])
    levels = np.arange(0.0, radius.max() + 2 * LEVEL_PX, LEVEL_PX)
    stack = np.stack([convolve(lin, disc_psf(r)) for r in levels])
    rng = np.random.default_rng(seed)
    out = []
    for k in range(frames):
        f = radius[k] / LEVEL_PX
        i = np.minimum(f.astype(int), len(levels) - 2)
        t = (f - i).astype(np.float32)
        rows, cols = np.indices(f.shape)
        img = (1 - t) * stack[i, rows, cols] + t * stack[i + 1, rows, cols]
        srgb = linear_to_srgb(img) + rng.normal(0, noise / 255.0, img.shape).astype(np.float32)
        out.append(quantise_u8(srgb))
    return out
