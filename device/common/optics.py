"""Physical blur shared by the simulated lens (device) and the training data (train).

Blur happens in linear light: a defocused highlight spreads its energy, it does not
average gamma-encoded values. PSFs are normalised to sum to 1 so blur keeps brightness.
"""
from __future__ import annotations

import cv2
import numpy as np

_SRGB_LUT_TO_LINEAR = None


def srgb_to_linear(img_u8: np.ndarray) -> np.ndarray:
    """8-bit sRGB -> float32 linear light in [0, 1] (a lookup table, so it is cheap)."""
    global _SRGB_LUT_TO_LINEAR
    if _SRGB_LUT_TO_LINEAR is None:
        v = np.arange(256, dtype=np.float64) / 255.0
        lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
        _SRGB_LUT_TO_LINEAR = lin.astype(np.float32)
    return _SRGB_LUT_TO_LINEAR[img_u8]


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    """float linear light -> float sRGB in [0, 1] (not yet quantised)."""
    x = np.clip(lin, 0.0, 1.0).astype(np.float32)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def quantise_u8(srgb: np.ndarray) -> np.ndarray:
    return np.clip(srgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def disc_psf(radius: float, soft_edge: float = 0.5, aberration: float = 0.0,
             angle: float = 0.0) -> np.ndarray:
    """Pillbox defocus PSF of ``radius`` px, anti-aliased over ``soft_edge`` px.

    ``aberration`` (0..~0.3) squashes the disc into an ellipse along ``angle`` (radians), a
    mild astigmatism so a net does not learn one perfect shape. A radius below 0.5 px
    returns the identity kernel: the blur circle is then smaller than a pixel.
    """
    if radius < 0:
        raise ValueError("radius must be >= 0")
    if radius < 0.5:
        return np.ones((1, 1), np.float32)
    half = int(np.ceil(radius * (1.0 + aberration) + soft_edge + 1))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    if aberration:
        c, s = np.cos(angle), np.sin(angle)
        u = (c * xx + s * yy) / (1.0 + aberration)
        v = (-s * xx + c * yy) * (1.0 + aberration)
        r = np.hypot(u, v)
    else:
        r = np.hypot(xx, yy)
    edge = max(soft_edge, 1e-3)
    k = np.clip((radius - r) / edge + 0.5, 0.0, 1.0)
    return (k / k.sum()).astype(np.float32)


def line_psf(length: float, angle: float, width: float = 1.0) -> np.ndarray:
    """Linear motion PSF of ``length`` px at ``angle`` (radians), anti-aliased."""
    if length < 1.0:
        return np.ones((1, 1), np.float32)
    half = int(np.ceil(length / 2 + 2))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    along = c * xx + s * yy
    across = -s * xx + c * yy
    k = np.clip(length / 2 - np.abs(along) + 0.5, 0, 1) * np.clip(width / 2 - np.abs(across) + 0.5, 0, 1)
    return (k / k.sum()).astype(np.float32)


def convolve(img: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Convolve a float image (H, W) or (H, W, C) with ``psf``, reflecting at the borders."""
    if psf.shape == (1, 1):
        return img.astype(np.float32, copy=False)
    # filter2D correlates; flipping makes it a true convolution for asymmetric PSFs.
    return cv2.filter2D(img.astype(np.float32, copy=False), -1, psf[::-1, ::-1],
                        borderType=cv2.BORDER_REFLECT)
