"""The lens-capped sensor check (dark and flat frames), and matching found defects to truth.

Sensor check (``sensor_check``): with the lens capped, N dark frames are averaged and
each pixel is compared with the local median of the stack, in units of a noise sigma
found by iterative sigma-clipping; optional flat frames (an evenly lit surface) reveal
dead pixels and tell stuck pixels (which do not respond to light) from hot ones.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from device.common.atomic import atomic_write_bytes, atomic_write_json
from device.common.preprocess import DEFECT_KINDS, to_bgr
from device.defects.candidates import MARGIN, SATURATED

def clipped_sigma(values: np.ndarray, k: float = 3.0, iters: int = 10) -> tuple[float, float]:
    """(mean, sigma) of ``values`` after iterative k-sigma clipping (outliers are the point
    of this check, so they must not inflate the noise estimate)."""
    v = np.asarray(values, np.float64).ravel()
    keep = np.ones(v.size, bool)
    mean, sd = float(v.mean()), float(v.std())
    for _ in range(iters):
        new = np.abs(v - mean) <= k * max(sd, 1e-9)
        if new.sum() < 10 or np.array_equal(new, keep):
            break
        keep = new
        mean, sd = float(v[keep].mean()), float(v[keep].std())
    return mean, max(sd, 1e-3)


def stack_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of N frames, float32 (H, W, C): averaging divides temporal noise by sqrt(N)."""
    acc = None
    for f in frames:
        img = to_bgr(f).astype(np.float32)
        if acc is None:
            acc = img
        elif img.shape != acc.shape:
            raise ValueError(f"frame size changed during the check: {img.shape} vs {acc.shape}")
        else:
            acc += img
    if acc is None:
        raise ValueError("no frames")
    return acc / len(frames)


def _deviation(stack: np.ndarray, clip_k: float = 3.0):
    """Per pixel: the channel deviating most from its local (5x5) median, the signed
    deviation in clipped-sigma units, and the level; plus the sigmas."""
    med = np.stack([cv2.medianBlur(stack[..., c], 5) for c in range(stack.shape[2])], axis=2)
    resid = stack - med
    sigmas = [clipped_sigma(resid[MARGIN:-MARGIN, MARGIN:-MARGIN, c], clip_k)[1] for c in range(stack.shape[2])]
    z = resid / np.array(sigmas, np.float32)
    ch = np.abs(z).argmax(axis=2)
    zz = np.take_along_axis(z, ch[..., None], 2)[..., 0]
    rr = np.take_along_axis(resid, ch[..., None], 2)[..., 0]
    level = np.take_along_axis(stack, ch[..., None], 2)[..., 0]
    return zz, rr, level, sigmas


LINE_K = 8.0        # a column or row stands out by this many sigmas of the line medians
LINE_MIN_ABS = 1.0  # ... and by at least this many grey levels


def _lines(resid: np.ndarray, k: float = LINE_K, min_abs: float = LINE_MIN_ABS):
    """Column and row defects of a residual plane (stack minus its local median, one
    channel): a whole line offset is below a pixel's noise bar but its median over the
    line is measured over hundreds of pixels. Returns ``(lines, col_offset, row_offset)``
    with the offsets (0 off the flagged lines) to take out before judging single pixels."""
    h, w = resid.shape
    inner = resid[MARGIN:h - MARGIN, MARGIN:w - MARGIN]
    out, offsets = [], []
    for axis, kind, n in ((0, "column", w), (1, "row", h)):
        off = np.zeros(n, np.float32)
        med = np.median(inner, axis=axis) if inner.size else np.zeros(0)
        if len(med) >= 10:
            centre, sd = clipped_sigma(med)
            z = (med - centre) / sd
            for i in np.nonzero((np.abs(z) > k) & (np.abs(med - centre) >= min_abs))[0].tolist():
                off[i + MARGIN] = med[i] - centre
                out.append({"kind": kind, "index": int(i + MARGIN), "offset": round(float(med[i] - centre), 2),
                            "sigma": round(float(z[i]), 2)})
        offsets.append(off)
    return out, offsets[0], offsets[1]


def sensor_check(darks: Sequence[np.ndarray], flats: Optional[Sequence[np.ndarray]] = None, *,
                 k: float = 6.0, min_abs: float = 6.0) -> dict:
    """Hot/dead/stuck map from lens-capped dark frames (and optional flat frames).

    * hot: brighter than its dark-stack neighbourhood by ``k`` sigma and ``min_abs`` levels;
    * stuck: abnormal in the darks or the flats, not saturated, and it does not respond to
      light: its flat level minus its dark level is under half of what its neighbours gain;
    * dead: darker than its flat-stack neighbourhood by ``k`` sigma and ``min_abs``.
    Without flats, dead pixels are invisible (a dead pixel in the dark is just dark) and
    stuck ones are reported as hot.

    Column and row defects (a line of photosites offset together, a few percent of a real
    sensor's defects) are found first and listed in ``lines`` (``kind`` column or row,
    ``index``, ``offset`` in grey levels, ``sigma``); their offset is taken out before single
    pixels are judged. ``meta.counts`` counts them too; ``defects.csv`` stays per pixel.
    """
    dark = stack_frames(darks)
    h, w = dark.shape[:2]
    inner = np.zeros((h, w), bool)
    inner[MARGIN:h - MARGIN, MARGIN:w - MARGIN] = True
    # Column and row defects first (in the dark stack's grey residual), so that the
    # pixels of a bright column are that column, not hundreds of hot pixels.
    grey = dark.mean(axis=2)
    lines, col_off, row_off = _lines(grey - cv2.medianBlur(grey.astype(np.float32), 5))
    dark = dark - (col_off[None, :] + row_off[:, None])[..., None]
    dz, dr, dlevel, dsig = _deviation(dark)
    hot = inner & (dz > k) & (dr > min_abs)
    meta = {"dark_frames": len(darks), "flat_frames": len(flats) if flats else 0, "k_sigma": k,
            "min_abs": min_abs, "dark_sigma": [round(s, 4) for s in dsig],
            "dark_level": round(float(np.median(dark)), 3), "width": int(w), "height": int(h)}
    kinds = np.zeros((h, w), np.int8)      # 0 none, then 1 + index in DEFECT_KINDS
    code = {kd: 1 + i for i, kd in enumerate(DEFECT_KINDS)}
    kinds[hot] = code["hot"]
    z_out, level_out = dz.copy(), dlevel.copy()
    if flats:
        flat = stack_frames(flats)
        if flat.shape != dark.shape:
            raise ValueError("flat and dark frames differ in size")
        fz, fr, flevel, fsig = _deviation(flat)
        gain = (flat - dark).mean(axis=2)
        gain_med = cv2.medianBlur(gain.astype(np.float32), 5)
        unresponsive = gain < 0.5 * np.maximum(gain_med, 1.0)
        abnormal_flat = inner & (np.abs(fz) > k) & (np.abs(fr) > min_abs)
        # A hot pixel saturates and so also looks unresponsive: stuck means stuck mid-scale.
        saturated = dlevel >= SATURATED
        # Stuck reads a fixed level above black: brighter than its neighbours in the darks
        # or in the flats. Dead reads black: darker in the flats, not brighter in the darks.
        stuck = inner & unresponsive & ~saturated & (hot | (abnormal_flat & ((fr > 0) | (dr > min_abs))))
        dead = inner & abnormal_flat & (fr < 0) & ~stuck & ~hot
        kinds[stuck] = code["stuck"]
        kinds[dead] = code["dead"]
        use_flat = (dead | (stuck & ~hot))
        z_out[use_flat] = fz[use_flat]
        level_out[use_flat] = flevel[use_flat]
        meta.update(flat_sigma=[round(s, 4) for s in fsig], flat_level=round(float(np.median(flat)), 3),
                    median_response=round(float(np.median(gain)), 3))
    ys, xs = np.nonzero(kinds)
    rows = [{"x": int(x), "y": int(y), "kind": DEFECT_KINDS[kinds[y, x] - 1], "value": round(float(level_out[y, x]), 2),
             "sigma": round(float(z_out[y, x]), 2)} for y, x in zip(ys, xs)]
    rows.sort(key=lambda r: -abs(r["sigma"]))
    meta["counts"] = {kd: sum(r["kind"] == kd for r in rows) for kd in DEFECT_KINDS}
    meta["counts"].update({kd: sum(ln["kind"] == kd for ln in lines) for kd in ("column", "row")})
    return {"meta": meta, "defects": rows, "lines": lines}


def write_check(out_dir: Path, check: dict, *, overwrite: bool = False) -> tuple[Path, Path]:
    """``defects.json`` and ``defects.csv`` (x, y, kind, value, sigma), atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(["x", "y", "kind", "value", "sigma"])
    for r in check["defects"]:
        wr.writerow([r["x"], r["y"], r["kind"], r["value"], r["sigma"]])
    j = atomic_write_json(out_dir / "defects.json", check, overwrite=overwrite)
    c = atomic_write_bytes(out_dir / "defects.csv", buf.getvalue().encode(), overwrite=overwrite)
    return j, c


def match(found: Sequence[dict], truth: Sequence[tuple[float, float]], tol: float = 2.5) -> tuple[int, int]:
    """(true defects found, false detections): each detection within ``tol`` px of a true
    defect centre (y, x) finds it; detections near no true defect are false."""
    hit = [False] * len(truth)
    false = 0
    for d in found:
        best, bd = None, tol
        for i, (ty, tx) in enumerate(truth):
            dist = math.hypot(ty - d["y"], tx - d["x"])
            if dist <= bd:
                best, bd = i, dist
        if best is None:
            false += 1
        else:
            hit[best] = True
    return sum(hit), false
