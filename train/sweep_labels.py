"""Real training tiles from a real focus sweep, labelled by the sweep's own evidence.

Every frame is brought to the working scale the device scores at and cut into focus
tiles, never across a seam (the frames of the shared data's ``focus_sweeps`` are two
half-frames joined at row 540). Per tile position the sweep gives a local focus curve,
the tile's detail (``train.detail.tile_detail``) frame by frame:

- the frames at the curve's top (detail >= ``SHARP_SHARE`` of the peak) are ``sharp``;
- frames well down the curve (detail <= ``DEFOCUS_SHARE`` of the peak) are ``defocus``,
  with a blur size estimated from the curve: the disc radius that, applied to the peak
  frame's tile, brings its detail down to this frame's (real defocus is close to a disc);
- frames between the two, and positions whose curve has no clear peak (flat, the peak
  barely above the curve's floor, or a curve that does not fall well on both sides of
  it), are not labelled: the evidence does not decide them.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.common.optics import disc_psf
from device.common.preprocess import (FOCUS_CLASSES, FOCUS_MAX_BLUR_PX, FOCUS_TILE, extract_tiles,
                                      textured_mask, tile_origins, to_grey, working_scale)
from device.errors import InputError
from train.detail import tile_detail

SHARP_SHARE = 0.85        # of the peak detail: still at the top of the local curve
DEFOCUS_SHARE = 0.35      # of the peak detail: well down the curve
MIN_PROMINENCE = 3.0      # peak detail over the curve's median: a real peak, not noise
MIN_PEAK_DETAIL = 3.0     # as train.data's sharp-detail floor: the peak must be sharp
BLUR_RADII = np.round(np.arange(0.5, FOCUS_MAX_BLUR_PX + 0.01, 0.25), 2)
SWEEP_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


@dataclass(frozen=True)
class SweepTiles:
    """The labelled tiles of one sweep: ``tiles`` uint8 (N, T, T), ``classes`` (N,) index
    into FOCUS_CLASSES, ``blur_px`` (N,), and where each came from (``frame``, ``pos``)."""
    tiles: np.ndarray
    classes: np.ndarray
    blur_px: np.ndarray
    frame: np.ndarray
    pos: np.ndarray
    positions: int          # tile positions with a decided curve
    frames: int

    def count(self, name: str) -> int:
        return int((self.classes == FOCUS_CLASSES.index(name)).sum())


def sweep_files(folder: str | Path) -> list[Path]:
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"--sweeps {folder}: not a folder")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in SWEEP_EXTS and f.is_file())
    if len(files) < 5:
        raise InputError(f"--sweeps {folder}: a focus sweep needs at least 5 frames, found {len(files)}")
    return files


def _working_grey(path: Path, seam: int | None) -> tuple[np.ndarray, int | None]:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: not a readable image")
    s = working_scale(img.shape)
    grey = to_grey(img)
    if s < 1.0:
        grey = cv2.resize(grey, (round(grey.shape[1] * s), round(grey.shape[0] * s)),
                          interpolation=cv2.INTER_AREA)
    return grey, None if seam is None else int(round(seam * s))


def seam_origins(shape: tuple[int, int], tile: int, seam: int | None) -> np.ndarray:
    """Tile origins (y, x) that never straddle row ``seam`` (each half gridded alone)."""
    h, w = shape
    if seam is None or not 0 < seam < h:
        return tile_origins(h, w, tile)
    top = tile_origins(seam, w, tile)
    bottom = tile_origins(h - seam, w, tile)
    if len(bottom):
        bottom = bottom + np.array([seam, 0])
    return np.concatenate([top, bottom]).astype(np.int64)


def estimate_blur(sharp_tile: np.ndarray, target_detail: float) -> float:
    """The disc radius (working px) that brings ``sharp_tile``'s detail down to
    ``target_detail``: the first radius of ``BLUR_RADII`` at or below it."""
    f = sharp_tile.astype(np.float32)
    for r in BLUR_RADII:
        blurred = cv2.filter2D(f, -1, disc_psf(float(r)), borderType=cv2.BORDER_REFLECT)
        if tile_detail(np.clip(blurred, 0, 255).astype(np.uint8)[None])[0] <= target_detail:
            return float(r)
    return float(BLUR_RADII[-1])


def label_sweep(folder: str | Path, tile: int = FOCUS_TILE, seam: int | None = 540) -> SweepTiles:
    """All decided tiles of the sweep in ``folder`` (frames in file-name order; ``seam`` in
    full-size rows, None for frames that are one picture)."""
    files = sweep_files(folder)
    frames = [_working_grey(f, seam) for f in files]
    shape = frames[0][0].shape
    if any(g.shape != shape for g, _ in frames):
        raise InputError(f"--sweeps {folder}: the frames differ in size")
    origins = seam_origins(shape, tile, frames[0][1])
    stack = np.stack([extract_tiles(g, origins, tile) for g, _ in frames])      # (F, P, T, T)
    detail = np.stack([tile_detail(t) for t in stack])                          # (F, P)
    textured = np.stack([textured_mask(t) for t in stack])
    out_t, out_c, out_b, out_f, out_p = [], [], [], [], []
    decided = 0
    for p in range(len(origins)):
        d = detail[:, p]
        peak = int(np.argmax(d))
        if d[peak] < MIN_PEAK_DETAIL or d[peak] < MIN_PROMINENCE * np.median(d) or not textured[peak, p]:
            continue
        # The curve must rise to its peak and fall after it: a peak at the end of the
        # sweep may lie beyond it, and then "sharp" is not known.
        low = DEFOCUS_SHARE * d[peak]
        if peak == 0 or peak == len(d) - 1 or d[:peak].min() > low or d[peak + 1:].min() > low:
            continue
        decided += 1
        for f in range(len(files)):
            if not textured[f, p]:
                continue
            share = d[f] / d[peak]
            if share >= SHARP_SHARE:
                cls, blur = "sharp", 0.0
            elif share <= DEFOCUS_SHARE:
                cls, blur = "defocus", estimate_blur(stack[peak, p], float(d[f]))
            else:
                continue
            out_t.append(stack[f, p])
            out_c.append(FOCUS_CLASSES.index(cls))
            out_b.append(blur)
            out_f.append(f)
            out_p.append(p)
    empty = np.zeros((0, tile, tile), np.uint8)
    return SweepTiles(np.stack(out_t) if out_t else empty, np.asarray(out_c, np.int64),
                      np.asarray(out_b, np.float32), np.asarray(out_f, np.int64),
                      np.asarray(out_p, np.int64), decided, len(files))


@functools.lru_cache(maxsize=8)
def cached_labels(folder: str, tile: int = FOCUS_TILE) -> SweepTiles:
    """``label_sweep`` once per process (every training sample drawn from a sweep reuses it)."""
    return label_sweep(folder, tile)
