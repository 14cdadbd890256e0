"""Boxes, defect markers and the magnified inset (zoom)."""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from device.overlay.paint import _FONT, _paint


# Each draw_* below returns the (x0, y0, x1, y1) boxes it may have touched, so that a
# persistent layer (RgbaLayer) can restore exactly those next frame.

def scale_box(box: Sequence[float], src_shape, dst_shape) -> tuple[int, int, int, int]:
    """An x,y,w,h box in ``src`` pixels -> ``dst`` pixels."""
    sy = dst_shape[0] / src_shape[0]
    sx = dst_shape[1] / src_shape[1]
    x, y, w, h = box
    return (int(round(x * sx)), int(round(y * sy)), max(1, int(round(w * sx))), max(1, int(round(h * sy))))


def ui_scale(shape) -> float:
    """Line widths and fonts grow with the canvas so a 2028-px preview stays legible."""
    return max(1.0, shape[1] / 800.0)


def _text_box(text: str, org: tuple[int, int], scale: float, thickness: int) -> tuple:
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    m = 2 * thickness + 2        # anti-aliasing and glyph overshoot
    x, y = org
    return (x - m, y - th - m, x + tw + m, y + base + m)


def _outline(x0: int, y0: int, x1: int, y1: int, m: int) -> list:
    """The four strips ``m`` pixels either side of a rectangle's edges (restoring them is
    all a frame outline needs; its inside may be a quarter of the picture)."""
    return [(x0 - m, y0 - m, x1 + m + 1, y0 + m + 1), (x0 - m, y1 - m, x1 + m + 1, y1 + m + 1),
            (x0 - m, y0 - m, x0 + m + 1, y1 + m + 1), (x1 - m, y0 - m, x1 + m + 1, y1 + m + 1)]


def draw_roi(canvas: np.ndarray, roi, src_shape, rgba: bool = False) -> list:
    if not roi:
        return []
    x, y, w, h = scale_box(roi, src_shape, canvas.shape)
    th = max(1, int(round(ui_scale(canvas.shape))))
    cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), _paint((0, 255, 255), rgba), th)
    return _outline(x, y, x + w - 1, y + h - 1, th + 1)


def draw_defects(canvas: np.ndarray, defects, src_shape, rgba: bool = False) -> list:
    """A circle and the kind for each defect (``x``, ``y`` in scored-frame pixels)."""
    if not defects:
        return []
    s = ui_scale(canvas.shape)
    sx = canvas.shape[1] / src_shape[1]
    sy = canvas.shape[0] / src_shape[0]
    colour = _paint((255, 0, 255), rgba)
    boxes = []
    for d in list(defects)[:64]:       # a flood of markers would hide the picture
        try:
            x, y = int(round(float(d["x"]) * sx)), int(round(float(d["y"]) * sy))
        except (KeyError, TypeError, ValueError):
            continue
        r, t = int(10 * s), max(1, int(s))
        cv2.circle(canvas, (x, y), r, colour, t, cv2.LINE_AA)
        label = str(d.get("kind", "defect"))[:12]
        org = (x + r + 2, y + 4)
        cv2.putText(canvas, label, org, _FONT, 0.4 * s, colour, t, cv2.LINE_AA)
        m = r + t + 2
        boxes += [(x - m, y - m, x + m + 1, y + m + 1), _text_box(label, org, 0.4 * s, t)]
    return boxes


STAR_CIRCLES = 200        # more circles than that hide the sky they mark


def draw_stars(canvas: np.ndarray, circles, src_shape, rgba: bool = False) -> list:
    """A thin green circle around each detected star: ``(x, y, radius)`` in scored-frame
    pixels (star mode's ``StarMonitor.circles``)."""
    if not circles:
        return []
    sx = canvas.shape[1] / src_shape[1]
    sy = canvas.shape[0] / src_shape[0]
    t = max(1, int(ui_scale(canvas.shape)))
    colour = _paint((80, 220, 80), rgba)
    boxes = []
    for x, y, r in list(circles)[:STAR_CIRCLES]:
        cx, cy, rr = int(round(x * sx)), int(round(y * sy)), max(3, int(round(r * sx)))
        cv2.circle(canvas, (cx, cy), rr, colour, t, cv2.LINE_AA)
        m = rr + t + 2
        boxes.append((cx - m, cy - m, cx + m + 1, cy + m + 1))
    return boxes


def zoom_region(roi, src_shape, dst_shape, factor: float, inset_w: int, inset_h: int):
    """The display-pixel region (x, y, w, h) that the inset magnifies: centred on the ROI
    (or the frame), ``inset / factor`` in size, kept inside the frame."""
    H, W = dst_shape[:2]
    if roi:
        x, y, w, h = scale_box(roi, src_shape, dst_shape)
        cx, cy = x + w / 2.0, y + h / 2.0
    else:
        cx, cy = W / 2.0, H / 2.0
    rw = max(4, min(W, int(round(inset_w / factor))))
    rh = max(4, min(H, int(round(inset_h / factor))))
    x0 = int(min(max(0, round(cx - rw / 2.0)), W - rw))
    y0 = int(min(max(0, round(cy - rh / 2.0)), H - rh))
    return x0, y0, rw, rh


def inset_size(shape, size: float) -> tuple[int, int]:
    H, W = shape[:2]
    iw = max(16, int(W * size))
    return iw, max(12, int(iw * H / W))


def zoom_crop(picture: np.ndarray, roi, src_shape, canvas_shape, factor: float = 3.0,
              size: float = 0.35) -> np.ndarray:
    """The part of ``picture`` the inset magnifies (a view). A picture larger than the
    canvas (the main stream under a smaller preview) gives its own, finer pixels."""
    iw, ih = inset_size(canvas_shape, size)
    x0, y0, rw, rh = zoom_region(roi, src_shape, canvas_shape, factor, iw, ih)
    H, W = canvas_shape[:2]
    ph, pw = picture.shape[:2]
    if (ph, pw) != (H, W):
        sx, sy = pw / W, ph / H
        rw, rh = max(1, min(pw, int(round(rw * sx)))), max(1, min(ph, int(round(rh * sy))))
        x0 = min(max(0, int(round(x0 * sx))), pw - rw)
        y0 = min(max(0, int(round(y0 * sy))), ph - rh)
    return picture[y0:y0 + rh, x0:x0 + rw]


def _resize_into(src: np.ndarray, dst: np.ndarray, interpolation: int) -> None:
    out = cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=interpolation)
    if not np.may_share_memory(out, dst):    # OpenCV wrote elsewhere: copy it in
        dst[...] = out


def draw_zoom(canvas: np.ndarray, picture: np.ndarray, roi, src_shape, factor: float = 3.0,
              size: float = 0.35, rgba: bool = False, crop: Optional[np.ndarray] = None) -> list:
    """A magnified inset (top right) of the ROI taken from the clean ``picture`` (BGR, any
    size; or ``crop``, already cut by ``zoom_crop``). Nearest-neighbour on purpose: real
    pixels are what a focus check needs."""
    H, W = canvas.shape[:2]
    iw, ih = inset_size(canvas.shape, size)
    x0, y0, rw, rh = zoom_region(roi, src_shape, canvas.shape, factor, iw, ih)
    if crop is None:
        crop = zoom_crop(picture, roi, src_shape, canvas.shape, factor, size)
    if crop.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    if rgba:     # converting the small crop beats swapping channels of the large inset
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGBA)
    m = max(2, int(4 * ui_scale(canvas.shape)))
    X, Y = W - iw - m, m
    shrink = crop.shape[1] > iw or crop.shape[0] > ih
    _resize_into(crop, canvas[Y:Y + ih, X:X + iw], cv2.INTER_AREA if shrink else cv2.INTER_NEAREST)
    white = _paint((255, 255, 255), rgba)
    cv2.rectangle(canvas, (X - 1, Y - 1), (X + iw, Y + ih), white, 1)
    cv2.rectangle(canvas, (x0, y0), (x0 + rw - 1, y0 + rh - 1), white, 1)
    return [(X - 2, Y - 2, X + iw + 2, Y + ih + 2)] + _outline(x0, y0, x0 + rw - 1, y0 + rh - 1, 1)
