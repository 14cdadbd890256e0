"""Classic focus measures: pure, vectorised functions on grey frames.

Every measure here is computed on a *working image*: the frame reduced by one Gaussian
pyramid step. The reduction is what makes the measures noise-robust: on real Pi camera
sweeps a plain 3x3 Laplacian on full-resolution pixels is dominated by sensor noise and
its curve is nearly flat.

Frames larger than the lores stream (short side ``REF_SHORT_SIDE``) are first resampled
down to it, so the frame-level ``focus`` value is comparable across resolutions, which the
ISP's FocusFoM is not; it is also a per-pixel mean, not a sum, and divided by the frame's
brightness squared so exposure does not move it. Smaller frames are not upsampled; their
value is corrected by the resampling factor squared, which is approximate. ``native=True``
skips the resampling: for ranking the stills of one sweep, where the finer scale
separates neighbouring lens positions better (it does on the real PCB sweep).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Optional, Sequence

import cv2
import numpy as np

from device.common.roi import Roi, check_roi
from device.errors import InputError
from device.common.preprocess import WORK_SIZE

REF_SHORT_SIDE = WORK_SIZE[1]   # the lores stream
# Gradient energy is divided by (frame mean^2 + BRIGHTNESS_FLOOR) so that exposure changes
# do not move the value, while a black frame does not divide by zero.
BRIGHTNESS_FLOOR = 16.0
FOCUS_GAIN = 1000.0  # puts typical values in a readable 1..1000 range

MEASURE_NAMES = ("tenengrad", "laplacian_var", "modified_laplacian", "brenner")



@dataclass(frozen=True)
class FocusMeasures:
    """Everything the classic scorer says about one frame."""
    focus: float                 # normalised Tenengrad of the ROI (or whole frame)
    measures: dict               # the four classic measures of the ROI, at working scale
    tile_map: np.ndarray         # (rows, cols) float32, normalised Tenengrad per tile
    roi: Optional[Roi]           # in frame pixels, as given
    # The working image and its gradient energy when at the frame's own scale (for
    # peaking to reuse), else None.
    work: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    energy: Optional[np.ndarray] = field(default=None, repr=False, compare=False)



def working_image(grey: np.ndarray, native: bool = False,
                  as_float: bool = True) -> tuple[np.ndarray, float]:
    """Frame -> (float32 working image, gain that makes its energy resolution-independent).

    ``as_float=False`` keeps an 8-bit frame's working image in 8 bits (the same integers
    the float one holds), for OpenCV paths that are faster on uint8 (peaking)."""
    if grey.ndim != 2:
        raise InputError(f"expected a grey 2-D frame, got shape {grey.shape}")
    short = min(grey.shape)
    if short < 8:
        raise InputError(f"image {grey.shape[1]}x{grey.shape[0]} is too small to judge focus")
    img = grey
    if not native and short > REF_SHORT_SIDE:
        s = REF_SHORT_SIDE / short
        size = (max(8, round(grey.shape[1] * s)), max(8, round(grey.shape[0] * s)))
        img = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        short = min(img.shape)
    gain = (short / float(REF_SHORT_SIDE)) ** 2
    # Reduce in 8 bits (4x less data to filter), then work in float.
    if img.dtype == np.uint8:
        work = cv2.pyrDown(img)
        return (work.astype(np.float32) if as_float else work), gain
    return cv2.pyrDown(img.astype(np.float32, copy=False)), gain


def _roi_slice(roi: Optional[Roi], frame_shape, work_shape) -> tuple[slice, slice]:
    if roi is None:
        return slice(None), slice(None)
    fy = work_shape[0] / frame_shape[0]
    fx = work_shape[1] / frame_shape[1]
    x, y, w, h = roi
    x0, y0 = int(np.floor(x * fx)), int(np.floor(y * fy))
    x1 = max(x0 + 3, int(np.ceil((x + w) * fx)))
    y1 = max(y0 + 3, int(np.ceil((y + h) * fy)))
    return slice(y0, min(y1, work_shape[0])), slice(x0, min(x1, work_shape[1]))


def _normalise(energy: np.ndarray | float, mean: np.ndarray | float, gain: float):
    return (FOCUS_GAIN * gain) * energy / (np.square(mean) + BRIGHTNESS_FLOOR)


def gradient_magnitude(work: np.ndarray) -> np.ndarray:
    """Per-pixel 3x3 Sobel gradient magnitude of a working image (also what peaking lights)."""
    gx = cv2.Sobel(work, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(work, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


# Per-thread scratch arrays for the per-frame temporaries. ``run`` sends every
# allocation of 128 KB or more to mmap (``device/common/malloc.py``, for the RSS), so a
# fresh 320x240 float32 temporary costs its page faults every frame: the classic scorer
# took 1.6 ms on the frame thread instead of 0.5 (``bench/bench_loop.py``). Reused here,
# they fault once; what a result keeps (the working image, the energy) is still new.
_scratch = threading.local()


def _temp(name: str, shape: tuple) -> np.ndarray:
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None:
        bufs = _scratch.bufs = {}
    buf = bufs.get(name)
    if buf is None or buf.shape != shape:
        buf = bufs[name] = np.empty(shape, np.float32)
    return buf


def gradient_energy(work: np.ndarray) -> np.ndarray:
    """Per-pixel Tenengrad (squared Sobel gradient magnitude) of a working image."""
    shape = work.shape[:2]
    gx = cv2.Sobel(work, cv2.CV_32F, 1, 0, dst=_temp("a", shape), ksize=3)
    gy = cv2.Sobel(work, cv2.CV_32F, 0, 1, dst=_temp("b", shape), ksize=3)
    # gx^2 + gy^2 directly: the magnitude's square root squared again costs two passes.
    return cv2.add(cv2.multiply(gx, gx, dst=gx), cv2.multiply(gy, gy, dst=gy))


_D2 = np.float32([1, -2, 1])
_ONE = np.float32([1])


def _classic(work: np.ndarray, energy: np.ndarray) -> dict:
    # One pass each through OpenCV's reductions (numpy's mean/var/abs each make a
    # full-size temporary): this is a third of the frame thread's classic cost.
    n = work.size
    shape = work.shape[:2]
    # The two scratch arrays gradient_energy used (it is done with them by now).
    dxx = cv2.sepFilter2D(work, cv2.CV_32F, _D2, _ONE, dst=_temp("a", shape))
    dyy = cv2.sepFilter2D(work, cv2.CV_32F, _ONE, _D2, dst=_temp("b", shape))
    modified = (cv2.norm(dxx, cv2.NORM_L1) + cv2.norm(dyy, cv2.NORM_L1)) / n
    # the 3x3 Laplacian is dxx + dyy, summed into dxx's array
    _, std = cv2.meanStdDev(cv2.add(dxx, dyy, dst=dxx))
    bn = work.shape[0] * (work.shape[1] - 2)
    return {
        "tenengrad": float(cv2.mean(energy)[0]),
        "laplacian_var": float(std[0, 0]) ** 2,
        "modified_laplacian": modified,
        "brenner": cv2.norm(work[:, 2:], work[:, :-2], cv2.NORM_L2SQR) / bn if bn else 0.0,
    }


def tile_means(values: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Mean of ``values`` over a rows x cols grid (the edge remainder is dropped)."""
    rows, cols = grid
    h, w = values.shape
    th, tw = max(1, h // rows), max(1, w // cols)
    rows, cols = min(rows, h), min(cols, w)
    v = values[: rows * th, : cols * tw]
    # At an exact integer factor INTER_AREA is the block mean: 2.6x faster than a numpy
    # reshape-mean on the frame thread, equal to it within float32 rounding.
    return cv2.resize(np.asarray(v, dtype=np.float32), (cols, rows), interpolation=cv2.INTER_AREA)


def score_frame(grey: np.ndarray, roi: Optional[Sequence[int]] = None,
                grid: tuple[int, int] = (6, 8), native: bool = False) -> FocusMeasures:
    """All classic measures for one grey frame: ROI focus value, measures and tile map."""
    roi = check_roi(roi, grey.shape)
    work, gain = working_image(grey, native)
    energy = gradient_energy(work)
    # The frame's mean brightness normalises everything: a per-tile mean would make dark
    # tiles (noise over a tiny mean) look sharpest.
    mean = float(cv2.mean(work)[0])
    tiles = _normalise(tile_means(energy, grid), mean, gain).astype(np.float32)
    sy, sx = _roi_slice(roi, grey.shape, work.shape)
    measures = _classic(work[sy, sx], energy[sy, sx])
    focus = float(_normalise(measures["tenengrad"], mean, gain))
    native_scale = native or min(grey.shape) <= REF_SHORT_SIDE
    return FocusMeasures(focus=focus, measures=measures, tile_map=tiles, roi=roi,
                         work=work if native_scale else None,
                         energy=energy if native_scale else None)


def focus_value(grey: np.ndarray, roi: Optional[Sequence[int]] = None,
                native: bool = False) -> float:
    """The normalised, noise-robust focus value of the ROI (what AF and trap focus use)."""
    roi = check_roi(roi, grey.shape)
    work, gain = working_image(grey, native)
    sy, sx = _roi_slice(roi, grey.shape, work.shape)
    return float(_normalise(gradient_energy(work[sy, sx]).mean(), float(work.mean()), gain))


def tenengrad(grey: np.ndarray) -> float:
    """Textbook Tenengrad on raw pixels (mean squared 3x3 Sobel magnitude): no noise
    reduction, no normalisation. The classic baseline the CNN is compared against."""
    g = grey.astype(np.float32, copy=False)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.mean(gx * gx + gy * gy))


def variance_of_laplacian(grey: np.ndarray) -> float:
    """Textbook variance of the 3x3 Laplacian on raw pixels (the folk "blur detector")."""
    return float(cv2.Laplacian(grey.astype(np.float32, copy=False), cv2.CV_32F, ksize=1).var())


def refine_peak(values: Sequence[float]) -> tuple[int, float]:
    """Index of the maximum and its sub-sample position from a parabola through it and its
    two neighbours (the vertex is clamped to within half a step of the best sample)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values")
    i = int(np.argmax(v))
    if i == 0 or i == v.size - 1:
        return i, float(i)
    a, b, c = v[i - 1], v[i], v[i + 1]
    denom = a - 2 * b + c
    if denom >= 0:
        return i, float(i)
    offset = 0.5 * (a - c) / denom
    return i, float(i + np.clip(offset, -0.5, 0.5))
