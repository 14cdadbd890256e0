"""``inspect --plot``: the best-focus map as a coloured grid over a thumbnail of the
sharpest frame, with the tilt arrow and the numbers. OpenCV only (no matplotlib on the Pi).
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from device.common.atomic import atomic_write_bytes
from device.common.preprocess import to_bgr
from device.errors import InputError
from device.optics.inspect import Inspection

THUMB_WIDTH = 720
ALPHA = 0.45
FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL_H = 78


def _text(img, text, org, scale=0.5, colour=(255, 255, 255), thick=1) -> None:
    # A dark outline keeps the text readable over any colour of the map.
    cv2.putText(img, text, org, FONT, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, FONT, scale, colour, thick, cv2.LINE_AA)


def render(ins: Inspection, sharpest: np.ndarray) -> np.ndarray:
    """The picture as a BGR array (the sharpest frame, any size, grey or colour)."""
    img = to_bgr(sharpest)
    h, w = img.shape[:2]
    scale = THUMB_WIDTH / w
    thumb = cv2.resize(img, (THUMB_WIDTH, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    th, tw = thumb.shape[:2]
    rows, cols = ins.grid_shape
    grid = np.array([[np.nan if v is None else v for v in row] for row in ins.fit.grid], float)
    ok = np.isfinite(grid)
    lo, hi = (float(grid[ok].min()), float(grid[ok].max())) if ok.any() else (0.0, 1.0)
    span = max(hi - lo, 1e-6)
    tint = thumb.copy()
    for r in range(rows):
        for c in range(cols):
            y0, y1 = round(r * th / rows), round((r + 1) * th / rows)
            x0, x1 = round(c * tw / cols), round((c + 1) * tw / cols)
            v = grid[r, c]
            if np.isfinite(v):
                level = np.uint8(round(255 * (v - lo) / span))
                colour = cv2.applyColorMap(np.array([[level]], np.uint8), cv2.COLORMAP_JET)[0, 0]
                cv2.rectangle(tint, (x0, y0), (x1 - 1, y1 - 1), tuple(int(k) for k in colour), -1)
            cv2.rectangle(thumb, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), 1)
    out = cv2.addWeighted(tint, ALPHA, thumb, 1 - ALPHA, 0)
    for r in range(rows):
        for c in range(cols):
            cx, cy = round((c + 0.5) * tw / cols), round((r + 0.5) * th / rows)
            label = "?" if not np.isfinite(grid[r, c]) else f"{grid[r, c]:.1f}"
            (lw, lh), _ = cv2.getTextSize(label, FONT, 0.6, 2)
            _text(out, label, (cx - lw // 2, cy + lh // 2), 0.6, thick=2)
    tx, ty = ins.fit.tilt_x or 0.0, ins.fit.tilt_y or 0.0
    length = math.hypot(tx, ty)
    if ins.verdict == "tilt" and length >= 0.05:
        # From the side that focuses first to the side that focuses last; only for a
        # tilt: on scene depth an arrow would show a tilt that is not there.
        half = 0.35 * min(tw, th)
        ux, uy = tx / length, ty / length
        p0 = (round(tw / 2 - ux * half), round(th / 2 - uy * half))
        p1 = (round(tw / 2 + ux * half), round(th / 2 + uy * half))
        cv2.arrowedLine(out, p0, p1, (0, 0, 0), 5, cv2.LINE_AA, tipLength=0.08)
        cv2.arrowedLine(out, p0, p1, (255, 255, 255), 2, cv2.LINE_AA, tipLength=0.08)
    panel = np.zeros((PANEL_H, tw, 3), np.uint8)

    def num(v):
        return "-" if v is None else f"{v:+.2f}"

    f = ins.fit
    _text(panel, f"best focus, frames {lo:.1f} (blue) .. {hi:.1f} (red); ? = undecided",
          (8, 20), 0.5)
    _text(panel, f"tilt x {num(f.tilt_x)}  y {num(f.tilt_y)}  curvature {num(f.curvature)}  "
                 f"fit rms {num(f.fit_rms)}  (frames)", (8, 44), 0.5)
    say = {"tilt": "tilt: the arrow points to later focus", "depth": "depth in the scene, not a tilt",
           "curvature": "field curvature", "level": "no measurable tilt or curvature",
           "undecided": "undecided: too few regions"}[ins.verdict]
    _text(panel, f"{say}; sharpest frame {ins.sharpest_frame}", (8, 68), 0.5, (200, 255, 200))
    return np.vstack([out, panel])


def write_plot(path: str, ins: Inspection, sharpest: np.ndarray) -> Path:
    """Render and write the picture atomically (PNG or JPEG, by the file's extension)."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in (".png", ".jpg", ".jpeg"):
        raise InputError(f"--plot {path}: give a .png or .jpg file name")
    if not p.parent.is_dir():
        raise InputError(f"--plot {path}: no such folder {p.parent}")
    ok, buf = cv2.imencode(".png" if ext == ".png" else ".jpg", render(ins, sharpest))
    if not ok:
        raise InputError(f"--plot {path}: could not encode the picture")
    try:
        return atomic_write_bytes(p, buf.tobytes())
    except OSError as exc:
        raise InputError(f"--plot {path}: cannot write ({exc.strerror or exc})") from None
