"""Focus peaking: edge strength, its adaptive threshold and painting the lit pixels.

See ``device.overlay`` for the threshold rule and the cost budget."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import cv2
import numpy as np

from device.scoring.measures import gradient_magnitude, working_image
from device.overlay.paint import NOISE_EVERY, _paint
from device.overlay.running import PeakingParams, PeakingState, RunningPeak


def _brightness_gain(work: np.ndarray) -> float:
    # +4 keeps a black frame from dividing by zero; values stay in grey levels per level.
    return 128.0 / (float(cv2.mean(work)[0]) + 4.0)


def peaking_work(grey: np.ndarray) -> np.ndarray:
    """The classic scorer's working image (``measures.working_image`` at native scale),
    kept in 8 bits for an 8-bit frame: the float version holds the same integers, and
    ``spatialGradient`` takes both 3x3 Sobel derivatives of an 8-bit image in one pass."""
    return working_image(grey, native=True, as_float=False)[0]


def edge_strength(grey: np.ndarray, work: Optional[np.ndarray] = None) -> np.ndarray:
    """Brightness-normalised Sobel magnitude of ``grey`` reduced by one pyramid level: the
    classic scorer's own noise-robust working image and gradient (``device.scoring.measures``)."""
    if work is None:
        work = peaking_work(grey)
    if work.dtype == np.uint8:
        dx, dy = cv2.spatialGradient(work)     # the same Sobel kernels and border
        mag = cv2.magnitude(dx.astype(np.float32), dy.astype(np.float32))
    else:
        mag = gradient_magnitude(work)
    mag *= np.float32(_brightness_gain(work))
    return mag


def noise_level(grey: np.ndarray, work: Optional[np.ndarray] = None) -> float:
    """Robust noise estimate in the units of ``edge_strength``: median |Laplacian| of the
    reduced frame (flat areas and noise dominate a median), brightness-normalised."""
    if work is None:
        work = peaking_work(grey)
    sub = np.ascontiguousarray(work[::2, ::2]) if min(work.shape) > 64 else work
    lap = np.abs(cv2.Laplacian(sub, cv2.CV_32F)).ravel()
    # np.median partitions around two ranks at once, 5x slower than one rank and a max.
    m = lap.size // 2
    part = np.partition(lap, m)
    med = float(part[m]) if lap.size % 2 else 0.5 * (float(part[m]) + float(part[:m].max()))
    return max(med, 0.5) * _brightness_gain(work)


_SUBSAMPLE = 16   # every 16th pixel bounds the quantile from below (see share_quantile)


def share_quantile(values: np.ndarray, share: float) -> float:
    """The value that ``share`` of ``values`` reach: exactly ``np.partition``'s order
    statistic, found among the few candidates above a bound taken from a subsample."""
    flat = values.ravel()
    n = flat.size
    k = min(n - 1, max(0, int(round(n * (1.0 - share)))))
    need = n - k                         # the answer is the need-th largest value
    if n >= 64 * _SUBSAMPLE:
        sub = flat[::_SUBSAMPLE]
        expect = need / _SUBSAMPLE
        # Twice the expected count plus a generous sampling margin: the bound nearly
        # always lies below the answer, and if not, the full partition below catches it.
        j = sub.size - 1 - int(2 * expect + 4 * math.sqrt(expect) + 8)
        if j > 0:
            bound = np.partition(sub, j)[j]
            cand = flat[flat >= bound]
            # Every value above the answer is >= bound iff at least `need` values are.
            if cand.size >= need:
                i = cand.size - need
                return float(np.partition(cand, i)[i])
    return float(np.partition(flat, k)[k])


def peaking_threshold(strength: np.ndarray, noise: float, level: RunningPeak, t: float,
                      params: PeakingParams) -> float:
    """The adaptive threshold (see the module docstring); updates ``level``."""
    q = share_quantile(strength, params.share)
    peak = level.update(q, t)
    return max(q, params.noise_k * noise, params.floor * peak, 1e-6)


def shared_strength(grey: np.ndarray, shared) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(working image, edge strength) from the classic scorer's ``WorkingImage`` of this
    frame, or None when it is not at peaking's scale (then peaking computes its own)."""
    if shared is None:
        return None
    h, w = grey.shape[:2]
    if shared.work.shape != ((h + 1) // 2, (w + 1) // 2):
        return None
    strength = cv2.sqrt(shared.energy)
    strength *= np.float32(_brightness_gain(shared.work))
    return shared.work, strength


def peaking_mask(grey: np.ndarray, state: PeakingState, t: float,
                 params: PeakingParams = PeakingParams(), shared=None) -> np.ndarray:
    """uint8 mask (1 = in-focus edge) at half the size of ``grey``; updates ``state``.

    ``shared``: the frame's ``FrameResult.working`` (the scorer already reduced and
    differentiated it), so this frame is not reduced and differentiated twice."""
    reused = shared_strength(grey, shared)
    if reused is not None:
        work, strength = reused
    else:
        work = peaking_work(grey)     # reduced once, shared by both
        strength = edge_strength(grey, work)
    if state.frames % NOISE_EVERY == 0 or state.noise <= 0:
        state.noise = noise_level(grey, work)
    state.frames += 1
    thr = peaking_threshold(strength, state.noise, state.level, t, params)
    return (strength > thr).view(np.uint8)


def _spans(n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray]:
    """First destination index and count for each source index under nearest-neighbour
    scaling (destination i shows source floor(i * n_src / n_dst))."""
    first = (np.arange(n_src + 1, dtype=np.int64) * n_dst + n_src - 1) // n_src
    return first[:-1], np.diff(first)


@lru_cache(maxsize=8)
def _block_plan(mh: int, mw: int, h: int, w: int):
    """How each mask pixel maps to a block of canvas pixels (built once per size pair):
    the flat canvas index of each mask pixel's block corner, and the blocks' offsets."""
    y0, ny = _spans(mh, h)
    x0, nx = _spans(mw, w)
    ky, kx = max(1, int(ny.max())), max(1, int(nx.max()))
    dy = np.arange(ky, dtype=np.int64)[:, None]
    dx = np.arange(kx, dtype=np.int64)[None, :]
    uniform = bool((ny == ky).all() and (nx == kx).all())
    plan = ((y0[:, None] * w + x0[None, :]).ravel(), ny, nx, (dy * w + dx).ravel(), dy, dx)
    for a in plan:
        a.flags.writeable = False        # shared by every caller of the cache
    return (*plan, uniform)


def peaking_pixels(mask: np.ndarray, shape) -> Optional[np.ndarray]:
    """Flat indices of the canvas pixels a mask lights when scaled to ``shape`` (nearest
    neighbour), or None when so many light that painting a full-size mask is cheaper."""
    h, w = shape[:2]
    mh, mw = mask.shape[:2]
    lit = np.flatnonzero(mask if mask.dtype == bool else mask != 0)
    corner, ny, nx, offsets, dy, dx, uniform = _block_plan(mh, mw, h, w)
    if lit.size * offsets.size > h * w // 16:
        return None
    base = corner[lit]
    if uniform:
        return (base[:, None] + offsets[None, :]).ravel()
    # Uneven scale factors: blocks differ by a pixel, and shrinking drops some rows.
    ys, xs = np.divmod(lit, mw)
    keep = (dy[None] < ny[ys][:, None, None]) & (dx[None] < nx[xs][:, None, None])
    return (base[:, None, None] + (dy * w + dx)[None])[keep]


def _paint_pixels(canvas: np.ndarray, idx: np.ndarray, colour: tuple) -> None:
    """Set the canvas pixels at flat indices ``idx`` to ``colour``."""
    h, w, c = canvas.shape
    if canvas.flags.c_contiguous:
        if c == 4:      # one 32-bit store per pixel
            canvas.view(np.uint32).reshape(-1)[idx] = np.array(colour, np.uint8).view(np.uint32)[0]
        else:
            canvas.reshape(-1, c)[idx] = colour
    else:               # a camera buffer with row padding
        ys, xs = np.divmod(idx, w)
        canvas[ys, xs] = colour


@lru_cache(maxsize=4)
def _solid(h: int, w: int, colour: tuple) -> np.ndarray:
    """A constant image (built once per size and colour; masked copies read from it)."""
    img = np.empty((h, w, len(colour)), np.uint8)
    img[:] = colour
    img.flags.writeable = False
    return img


def draw_peaking(canvas: np.ndarray, mask: np.ndarray, colour_bgr, rgba: bool = False):
    """Paint the mask's pixels in ``colour``, scaled to the canvas (nearest: crisp dots).

    Returns the painted flat pixel indices, or None if it painted a full-size mask. A
    sharp frame lights 0.5% of the pixels, so painting their blocks beats upscaling the
    mask and running a masked copy over every pixel.
    """
    h, w = canvas.shape[:2]
    colour = _paint(colour_bgr, rgba)
    idx = peaking_pixels(mask, canvas.shape)
    if idx is not None:
        _paint_pixels(canvas, idx, colour)
        return idx
    if mask.shape[:2] != (h, w):
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    cv2.copyTo(_solid(h, w, colour), mask, canvas)
    return None
