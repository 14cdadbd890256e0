"""The simulated night sky behind ``--source sim:scene=stars``.

Each star is a Moffat seeing profile (the atmosphere) convolved with the telescope's
pupil image (defocus): a disc of the simulated lens's blur radius, with a central hole
of ``obstruction`` times that radius for a reflector's secondary mirror, so defocused
stars are donuts. The lens's focus model (``SimCamera.blur_radius``) sets the radius,
so the simulated motor and the autofocus drive it exactly as they drive the photo scenes.

Everything here is noiseless linear light in [0, 1]; ``SimCamera`` adds the sky's shot
and read noise and the hot pixels. ``true_hfr`` gives the half-flux radius of the very
PSF rendered, the ground truth the star measures are tested against.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from device.config.stars import SkyConfig

_OVERSAMPLE = 3          # Moffat integrated over 3x3 sub-pixels: a 2.6 px core is not flat
_DRIFT_DIR = (0.8, 0.6)  # the direction the field drifts (poor polar alignment, say)


def moffat_alpha(fwhm: float, beta: float) -> float:
    return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_hfr(fwhm: float, beta: float) -> float:
    """Half-flux radius of a Moffat profile: its enclosed flux is 1 - (1 + r^2/a^2)^(1-b)."""
    return moffat_alpha(fwhm, beta) * math.sqrt(2.0 ** (1.0 / (beta - 1.0)) - 1.0)


def moffat_stamp(fwhm: float, beta: float, dx: float, dy: float, half: int) -> np.ndarray:
    """A unit-flux Moffat star centred ``dx, dy`` px off the stamp's centre pixel,
    integrated over each pixel (sampled on a 3x3 sub-grid)."""
    a = moffat_alpha(fwhm, beta)
    s = (np.arange(_OVERSAMPLE) + 0.5) / _OVERSAMPLE - 0.5
    g = (np.arange(-half, half + 1)[:, None] + s[None, :]).ravel()     # sub-pixel centres
    yy = (g - dy)[:, None]
    xx = (g - dx)[None, :]
    prof = (1.0 + (xx * xx + yy * yy) / (a * a)) ** (-beta)
    n = 2 * half + 1
    px = prof.reshape(n, _OVERSAMPLE, n, _OVERSAMPLE).sum(axis=(1, 3))
    # Normalise to the profile's total flux so light beyond the stamp is simply lost.
    return (px * (beta - 1.0) / (math.pi * a * a) / _OVERSAMPLE ** 2).astype(np.float32)


def pupil_kernel(radius: float, obstruction: float, oversample: int = 4) -> np.ndarray:
    """The defocused pupil, a disc (an annulus with an obstruction) integrated over each
    pixel on an ``oversample``-fold sub-grid, so sub-pixel radii render faithfully; sum 1."""
    if radius < 0.25:
        return np.ones((1, 1), np.float32)
    half = int(math.ceil(radius + 0.5))
    s = (np.arange(oversample) + 0.5) / oversample - 0.5
    g = (np.arange(-half, half + 1)[:, None] + s[None, :]).ravel()
    r = np.hypot(g[:, None], g[None, :])
    inside = (r <= radius) & (r >= obstruction * radius)
    n = 2 * half + 1
    k = inside.reshape(n, oversample, n, oversample).sum(axis=(1, 3)).astype(np.float32)
    if k.sum() <= 0:
        return np.ones((1, 1), np.float32)
    return k / k.sum()


def true_hfr(blur_radius: float, cfg: SkyConfig = SkyConfig()) -> float:
    """Half-flux radius (px) of the rendered PSF at a blur radius: the Moffat's in focus
    (closed form), else the seeing convolved with the pupil, measured on a noiseless,
    centred, 4x oversampled rendering."""
    if blur_radius < 0.25:
        return moffat_hfr(cfg.seeing_fwhm, cfg.moffat_beta)
    o = 4
    half = int(math.ceil(blur_radius + 6 * cfg.seeing_fwhm)) * o
    fine = moffat_stamp(cfg.seeing_fwhm * o, cfg.moffat_beta, 0.0, 0.0, half)
    fine = cv2.filter2D(fine, -1, pupil_kernel(blur_radius * o, cfg.obstruction, 1),
                        borderType=cv2.BORDER_CONSTANT)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    r = np.hypot(xx, yy).ravel() / o
    order = np.argsort(r)
    cum = np.cumsum(fine.ravel()[order])
    return float(r[order][np.searchsorted(cum, 0.5 * cum[-1])])


class StarSky:
    """A fixed, seeded star field; ``linear(blur_radius, frame)`` renders it."""

    def __init__(self, cfg: SkyConfig, width: int, height: int, seed: int):
        self.cfg = cfg
        self.width, self.height = width, height
        rng = np.random.default_rng(seed + 1601)
        n = cfg.stars
        self.x = rng.uniform(4, width - 4, n)
        self.y = rng.uniform(4, height - 4, n)
        # Star counts rise steeply towards faint stars: peaks log-uniform is close enough.
        peaks = np.exp(rng.uniform(math.log(cfg.min_peak), math.log(cfg.max_peak), n))
        a = moffat_alpha(cfg.seeing_fwhm, cfg.moffat_beta)
        self.flux = peaks * math.pi * a * a / (cfg.moffat_beta - 1.0)
        self._half = int(math.ceil(4 * cfg.seeing_fwhm)) + 2

    def shift(self, frame: int) -> tuple[float, float]:
        d = self.cfg.drift * frame
        return d * _DRIFT_DIR[0], d * _DRIFT_DIR[1]

    def points(self, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """The in-focus field (seeing only, no sky), linear light."""
        h, w, half = self.height, self.width, self._half
        img = np.zeros((h + 2 * half, w + 2 * half), np.float32)     # margin for stamps
        xs, ys = self.x + shift[0], self.y + shift[1]
        for x, y, f in zip(xs, ys, self.flux):
            ix, iy = int(round(x)), int(round(y))
            if not (0 <= ix < w and 0 <= iy < h):
                continue   # drifted out of the frame
            st = moffat_stamp(self.cfg.seeing_fwhm, self.cfg.moffat_beta, x - ix, y - iy, half)
            img[iy:iy + 2 * half + 1, ix:ix + 2 * half + 1] += f * st
        return img[half:half + h, half:half + w]

    def linear(self, blur_radius: float, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """The sky at a blur radius: stars through the pupil, plus the sky level."""
        img = self.points(shift)
        k = pupil_kernel(blur_radius, self.cfg.obstruction)
        if k.shape != (1, 1):
            img = cv2.filter2D(img, -1, k, borderType=cv2.BORDER_CONSTANT)
        img *= 1.0 - self.cfg.clouds
        return img + np.float32(self.cfg.sky)
