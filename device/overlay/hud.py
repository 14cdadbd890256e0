"""The heads-up display: focus value, peak, the CNN's verdict, AF, captures, star mode's
sizes and status, fps."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from device.overlay.marks import _text_box, ui_scale
from device.overlay.paint import _FONT, _paint


@dataclass
class HudInfo:
    """Everything the HUD shows; ``None`` fields are left out (feature not built or off)."""
    focus: Optional[float] = None
    peak: Optional[float] = None
    label: Optional[str] = None
    sharp_prob: Optional[float] = None
    verdict_by: Optional[str] = None    # which evidence decided the label (scoring.verdict)
    autofocus: Optional[str] = None
    motor: Optional[str] = None
    captures: Optional[int] = None
    fps: Optional[float] = None
    stars: Optional["StarLine"] = None    # star mode


@dataclass(frozen=True)
class StarLine:
    """Star mode's HUD lines: sizes in px (NaN: none measured), the minimum HFR held
    since the last reset, and the status when it is not "ok" (no stars, clouds)."""
    hfr: float
    fwhm: float
    count: int
    min_hfr: float
    status: str = "ok"

    def lines(self) -> list[str]:
        def px(v: float) -> str:
            return f"{v:.2f}" if math.isfinite(v) else "-"
        out = [f"HFR {px(self.hfr)}  min {px(self.min_hfr)} px",
               f"FWHM {px(self.fwhm)} px  {self.count} stars"]
        if self.status != "ok":
            out.append(self.status)
        return out


# The label line names the evidence when the focus curve had a say in it.
_VERDICT_PREFIX = {"curve": "curve", "net_and_curve": "CNN+curve"}


def hud_lines(info: HudInfo) -> list[str]:
    lines = []
    if info.focus is not None:
        peak = f"  peak {info.peak:.1f}" if info.peak else ""
        lines.append(f"focus {info.focus:.1f}{peak}")
    if info.label:
        p = f" {info.sharp_prob:.2f}" if info.sharp_prob is not None else ""
        lines.append(f"{_VERDICT_PREFIX.get(info.verdict_by, 'CNN')} {info.label}{p}")
    if info.autofocus:
        lines.append(f"AF {info.autofocus}")
    if info.motor:
        lines.append(f"motor {info.motor}")
    if info.captures is not None:
        lines.append(f"captures {info.captures}")
    if info.stars is not None:
        lines += info.stars.lines()
    if info.fps is not None:
        lines.append(f"{info.fps:.1f} fps")
    return lines


def bar_colour(ratio: float) -> tuple[int, int, int]:
    """Green at the peak, amber near it, red once clearly past it (BGR)."""
    if ratio >= 0.95:
        return (0, 220, 0)
    if ratio >= 0.8:
        return (0, 190, 255)
    return (0, 0, 230)


def draw_hud(canvas: np.ndarray, info: HudInfo, rgba: bool = False) -> list:
    """Top-left panel: a focus bar with the held peak, then one line per known fact."""
    s = ui_scale(canvas.shape)
    lines = hud_lines(info)
    pad, lh = int(6 * s), int(18 * s)
    bar_w, bar_h = int(200 * s), int(10 * s)
    has_bar = info.focus is not None
    panel_h = pad * 2 + (bar_h + pad if has_bar else 0) + lh * len(lines)
    panel_w = bar_w + 2 * pad
    H, W = canvas.shape[:2]
    panel_h, panel_w = min(panel_h, H), min(panel_w, W)
    if rgba:     # one OpenCV fill: numpy broadcasting a 4-byte colour is 15x slower
        cv2.rectangle(canvas, (0, 0), (panel_w - 1, panel_h - 1), (0, 0, 0, 140), -1)
    else:
        canvas[:panel_h, :panel_w] >>= 1   # darken by half: text stays readable on any scene
    boxes = [(0, 0, panel_w, panel_h)]
    y = pad
    if has_bar:
        peak = info.peak or 0.0
        full = max(peak, info.focus, 1e-9) * 1.25
        filled = int(bar_w * min(1.0, max(0.0, info.focus) / full))
        ratio = info.focus / peak if peak > 0 else 1.0
        cv2.rectangle(canvas, (pad, y), (pad + bar_w, y + bar_h), _paint((90, 90, 90), rgba), -1)
        if filled > 0:
            cv2.rectangle(canvas, (pad, y), (pad + filled, y + bar_h), _paint(bar_colour(ratio), rgba), -1)
        if peak > 0:
            px = pad + int(bar_w * peak / full)
            t = max(1, int(2 * s))
            cv2.line(canvas, (px, y - 2), (px, y + bar_h + 2), _paint((255, 255, 255), rgba), t)
            boxes.append((px - t - 1, y - t - 3, px + t + 2, y + bar_h + t + 3))
        y += bar_h + pad
    white = _paint((255, 255, 255), rgba)
    for text in lines:
        y += lh
        if y > H:
            break
        org, t = (pad, y - int(5 * s)), max(1, int(s))
        cv2.putText(canvas, text, org, _FONT, 0.45 * s, white, t, cv2.LINE_AA)
        boxes.append(_text_box(text, org, 0.45 * s, t))
    return boxes
