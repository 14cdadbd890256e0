"""Classic focus measures: pure, vectorised functions on grey frames.

Every measure here is computed on a *working image*: the frame reduced by one Gaussian
pyramid step. The reduction is what makes the measures noise-robust: on real Pi camera
sweeps a plain 3x3 Laplacian on full-resolution pixels is dominated by sensor noise and
its curve is nearly flat (see docs: anchors.md). Resampling further would cost focus
discrimination: on the real PCB sweep the peak is much clearer at native scale.

The frame-level ``focus`` value is a per-pixel mean (not a sum, so it does not grow with
pixel count), divided by brightness squared (so exposure does not move it) and scaled by
the square of the frame's size relative to a ``REF_SHORT_SIDE`` reference (gradients of a
resampled image scale with the resampling factor). It is therefore comparable across
resolutions, which the ISP's FocusFoM is not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from .errors import InputError

REF_SHORT_SIDE = 480
# Gradient energy is divided by (mean^2 + BRIGHTNESS_FLOOR) so that exposure changes do not
# move the value, while a black frame does not divide by zero.
BRIGHTNESS_FLOOR = 16.0
FOCUS_GAIN = 1000.0  # puts typical values in a readable 1..1000 range

MEASURE_NAMES = ("tenengrad", "laplacian_var", "modified_laplacian", "brenner")

Roi = tuple[int, int, int, int]


@dataclass(frozen=True)
class FocusMeasures:
    """Everything the classic scorer says about one frame."""
    focus: float                 # normalised Tenengrad of the ROI (or whole frame)
    measures: dict               # the four classic measures of the ROI, at working scale
    tile_map: np.ndarray         # (rows, cols) float32, normalised Tenengrad per tile
    roi: Optional[Roi]           # in frame pixels, as given

    def as_dict(self) -> dict:
        return {
            "focus": self.focus,
            "measures": dict(self.measures),
            "tile_map": self.tile_map.round(3).tolist(),
            "roi": list(self.roi) if self.roi else None,
        }


def check_roi(roi: Optional[Sequence[int]], shape: tuple[int, ...]) -> Optional[Roi]:
    """Validate an ROI against a frame shape; raises InputError naming the problem."""
    if roi is None:
        return None
    x, y, w, h = (int(v) for v in roi)
    height, width = shape[:2]
    if w <= 0 or h <= 0:
        raise InputError(f"ROI {x},{y},{w},{h} is empty")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise InputError(f"ROI {x},{y},{w},{h} lies outside the {width}x{height} image")
    return (x, y, w, h)


def resolution_gain(shape: tuple[int, ...]) -> float:
    """(frame short side / reference)^2: undoes how resampling scales gradient energy."""
    return (min(shape[:2]) / float(REF_SHORT_SIDE)) ** 2


def working_image(grey: np.ndarray) -> np.ndarray:
    """Frame -> float32 image reduced by one Gaussian pyramid level."""
    if grey.ndim != 2:
        raise InputError(f"expected a grey 2-D frame, got shape {grey.shape}")
    if min(grey.shape) < 8:
        raise InputError(f"image {grey.shape[1]}x{grey.shape[0]} is too small to judge focus")
    return cv2.pyrDown(grey.astype(np.float32, copy=False))


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


def gradient_energy(work: np.ndarray) -> np.ndarray:
    """Per-pixel Tenengrad (squared Sobel gradient magnitude) of a working image."""
    gx = cv2.Sobel(work, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(work, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy) ** 2


def _classic(work: np.ndarray, energy: np.ndarray) -> dict:
    lap = cv2.Laplacian(work, cv2.CV_32F, ksize=1)
    dxx = cv2.sepFilter2D(work, cv2.CV_32F, np.float32([1, -2, 1]), np.float32([1]))
    dyy = cv2.sepFilter2D(work, cv2.CV_32F, np.float32([1]), np.float32([1, -2, 1]))
    bx = work[:, 2:] - work[:, :-2]
    return {
        "tenengrad": float(energy.mean()),
        "laplacian_var": float(lap.var()),
        "modified_laplacian": float(np.abs(dxx).mean() + np.abs(dyy).mean()),
        "brenner": float(np.square(bx).mean()),
    }


def tile_means(values: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Mean of ``values`` over a rows x cols grid (the edge remainder is dropped)."""
    rows, cols = grid
    h, w = values.shape
    th, tw = max(1, h // rows), max(1, w // cols)
    rows, cols = min(rows, h), min(cols, w)
    v = values[: rows * th, : cols * tw]
    return v.reshape(rows, th, cols, tw).mean(axis=(1, 3), dtype=np.float32)


def score_frame(grey: np.ndarray, roi: Optional[Sequence[int]] = None,
                grid: tuple[int, int] = (6, 8)) -> FocusMeasures:
    """All classic measures for one grey frame: ROI focus value, measures and tile map."""
    roi = check_roi(roi, grey.shape)
    work = working_image(grey)
    gain = resolution_gain(grey.shape)
    energy = gradient_energy(work)
    tiles = _normalise(tile_means(energy, grid), tile_means(work, grid), gain).astype(np.float32)
    sy, sx = _roi_slice(roi, grey.shape, work.shape)
    w_roi, e_roi = work[sy, sx], energy[sy, sx]
    measures = _classic(w_roi, e_roi)
    focus = float(_normalise(measures["tenengrad"], float(w_roi.mean()), gain))
    return FocusMeasures(focus=focus, measures=measures, tile_map=tiles, roi=roi)


def focus_value(grey: np.ndarray, roi: Optional[Sequence[int]] = None) -> float:
    """The normalised, noise-robust focus value of the ROI (what AF and trap focus use)."""
    roi = check_roi(roi, grey.shape)
    work = working_image(grey)
    sy, sx = _roi_slice(roi, grey.shape, work.shape)
    w_roi = work[sy, sx]
    gain = resolution_gain(grey.shape)
    return float(_normalise(gradient_energy(w_roi).mean(), float(w_roi.mean()), gain))


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
