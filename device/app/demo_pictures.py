"""The pictures ``make demo`` leaves behind: viewfinder snapshots at and off the focus
peak, a focus-curve plot of the manual pass with its captures marked, a plot of the
autofocus path, the star autofocus's V-curve, and an ``index.html`` that shows them with
the summary.

Plots are drawn with OpenCV, which the device already depends on: matplotlib would add
tens of megabytes to a Pi install for four line charts, and would pull a desktop library
into the device's import graph.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from device.common.atomic import atomic_write_bytes
from device.loop.result import FrameResult
from device.loop.sink import Sink

WHITE, INK, GRID = (255, 255, 255), (40, 40, 40), (225, 225, 225)
BLUE, ORANGE, GREEN = (180, 110, 30), (20, 120, 240), (60, 160, 60)


@dataclass
class PassRecord:
    """What one replayed pass showed, frame by frame, and its two snapshots (BGR)."""
    focus: list = field(default_factory=list)
    lens: list = field(default_factory=list)          # None where the source has no lens
    af_state: list = field(default_factory=list)      # None without autofocus
    peak_frame: int = -1
    peak_picture: Optional[np.ndarray] = None
    off_frame: int = -1
    off_picture: Optional[np.ndarray] = None


class LensTap(Sink):
    """Reads the lens position before any other sink runs: where the frame was taken, not
    where the autofocus has just sent the lens."""

    def __init__(self, record: PassRecord, lens_position=None):
        self.record = record
        self.lens_position = lens_position

    def on_frame(self, frame, result: FrameResult) -> None:
        self.record.lens.append(float(self.lens_position()) if self.lens_position else None)


class PassRecorder(Sink):
    """Records focus and lens position per frame and keeps the composed viewfinder picture
    of the sharpest and of the least sharp frame so far (the off-focus snapshot is taken
    only before the peak, where the lens is still on its way in)."""

    def __init__(self, viewfinder, record: PassRecord, autofocus=None):
        self.vf = viewfinder
        self.autofocus = autofocus
        self.record = record

    def on_frame(self, frame, result: FrameResult) -> None:
        r = self.record
        i = len(r.focus)
        r.focus.append(float(result.focus))
        r.af_state.append(self.autofocus.state if self.autofocus is not None else None)
        if r.peak_frame < 0 or result.focus > r.focus[r.peak_frame]:
            r.peak_frame, r.peak_picture = i, self.vf.compose(frame, result)
        if r.off_frame < 0 or result.focus < r.focus[r.off_frame]:
            r.off_frame, r.off_picture = i, self.vf.compose(frame, result)


def replay(spec: str, overrides: dict, frames: int) -> PassRecord:
    """Run one pass in this process on ``spec`` with the heat map and zoom inset on, the
    capture and frame log off, and return what it showed."""
    from device.app.wiring import build_app
    from device.config import load_config, merge
    from device.loop.frame_loop import Loop
    from device.sources import open_source
    from device.sources.sim import SimCamera
    from device.viewfinder.state import Viewfinder

    base = {"overlay": {"heatmap": True, "zoom": True}, "capture": {"enabled": False},
            "log": {"jsonl": None}, "web": {"listen": None}}
    cfg = load_config(overrides=merge(base, overrides))
    source = open_source(spec, cfg)
    app = build_app(cfg, source, headless=True, environ={})
    vf = Viewfinder(cfg.overlay, cfg.web.history_s, autofocus=app.autofocus, capture=app.capture)
    # Where the simulated lens was when the frame was exposed, not the motor's target.
    if isinstance(source, SimCamera):
        lens = lambda: source.exposed_position  # noqa: E731
    elif app.motor is not None:
        lens = lambda: app.motor.position  # noqa: E731
    else:
        lens = None
    record = PassRecord()
    sinks = [LensTap(record, lens), *app.sinks, vf, PassRecorder(vf, record, app.autofocus)]
    loop = Loop(source, app.scorer, sinks, max_frames=frames,
                faults=cfg.service)
    try:
        loop.run()
    finally:
        loop.close()
    return record


# --- plots -------------------------------------------------------------------------

def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.2g}"


def _text(img, s, org, scale=0.45, colour=INK, thick=1) -> None:
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def line_panel(img: np.ndarray, box: tuple[int, int, int, int], ys: Sequence[Optional[float]],
               *, title: str, ylabel: str, colour=BLUE, marks: Sequence[int] = (),
               mark_label: str = "", band: Optional[tuple[float, float]] = None) -> None:
    """Draw one line chart of ``ys`` against frame index into ``box`` = (x, y, w, h) of
    ``img``; ``marks`` are frame indices drawn as vertical lines, ``band`` a shaded y
    range (the depth of field, say). ``None`` values leave gaps."""
    x0, y0, w, h = box
    left, right, top, bottom = 62, 14, 26, 34
    px, py, pw, ph = x0 + left, y0 + top, w - left - right, h - top - bottom
    vals = [v for v in ys if v is not None and math.isfinite(v)]
    if band:
        vals += list(band)
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = 0.06 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    n = max(len(ys) - 1, 1)

    def X(i):
        return int(round(px + pw * i / n))

    def Y(v):
        return int(round(py + ph * (1 - (v - lo) / (hi - lo))))

    cv2.rectangle(img, (px, py), (px + pw, py + ph), GRID, 1)
    if band:
        overlay = img.copy()
        cv2.rectangle(overlay, (px, Y(band[1])), (px + pw, Y(band[0])), (200, 235, 200), -1)
        cv2.addWeighted(overlay, 0.6, img, 0.4, 0, dst=img)
    for t in _nice_ticks(lo, hi):
        cv2.line(img, (px, Y(t)), (px + pw, Y(t)), GRID, 1)
        _text(img, _fmt(t), (x0 + 4, Y(t) + 4), 0.4)
    for t in _nice_ticks(0, n, 6):
        cv2.line(img, (X(t), py + ph), (X(t), py + ph + 4), INK, 1)
        _text(img, f"{t:.0f}", (X(t) - 10, py + ph + 18), 0.4)
    _text(img, "frame", (px + pw - 40, py + ph + 31), 0.4)
    for m in marks:
        if 0 <= m < len(ys):
            cv2.line(img, (X(m), py), (X(m), py + ph), GREEN, 2)
    pts = [(X(i), Y(v)) for i, v in enumerate(ys) if v is not None and math.isfinite(v)]
    if len(pts) > 1:
        cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 2, cv2.LINE_AA)
    _text(img, title, (x0 + 4, y0 + 17), 0.5, INK, 1)
    _text(img, ylabel, (px + 6, py + 16), 0.4, colour)
    if marks and mark_label:
        _text(img, mark_label, (px + pw - 8 * len(mark_label) - 6, py + 16), 0.4, GREEN)


def focus_curve_plot(focus: Sequence[float], captures: Sequence[int], size=(900, 360)) -> np.ndarray:
    img = np.full((size[1], size[0], 3), WHITE, np.uint8)
    line_panel(img, (0, 0, size[0], size[1]), focus,
               title="Manual pass: focus per frame (the ring turned by hand)",
               ylabel="focus", marks=captures, mark_label=f"captures ({len(captures)})")
    return img


def autofocus_plot(lens: Sequence[Optional[float]], focus: Sequence[float],
                   best: Optional[float] = None, depth: Optional[float] = None,
                   size=(900, 560)) -> np.ndarray:
    img = np.full((size[1], size[0], 3), WHITE, np.uint8)
    half = size[1] // 2
    band = (best - depth / 2, best + depth / 2) if best is not None and depth else None
    line_panel(img, (0, 0, size[0], half), lens, colour=ORANGE, band=band,
               title="Autofocus: lens position per frame (green band: in focus)",
               ylabel="lens position (steps)")
    line_panel(img, (0, half, size[0], size[1] - half), focus, title="Autofocus: focus per frame",
               ylabel="focus")
    return img


def star_replay(spec: str, frames: int, measure: str = "hfr") -> tuple:
    """Run the star autofocus on ``spec`` (a ``sim:scene=stars`` lens) in this process and
    return ``(points, state, best, depth)``: the (lens position while exposed, HFR) of each
    frame, the autofocus's final state, and the simulated best position and depth of field."""
    from device.app.wiring import build_app
    from device.config import load_config
    from device.loop.frame_loop import Loop
    from device.scoring.stars_live import StarMonitor
    from device.sources import open_source

    cfg = load_config(overrides={"motor": {"enabled": True, "driver": "sim"},
                                 "autofocus": {"enabled": True, "mode": "once", "measure": measure},
                                 "capture": {"enabled": False}, "log": {"jsonl": None},
                                 "web": {"listen": None}})
    source = open_source(spec, cfg)
    app = build_app(cfg, source, headless=True, environ={})
    monitor = StarMonitor(measure, cfg.stars, lens_position=lambda: source.exposed_position,
                          max_points=frames)
    loop = Loop(source, app.scorer, [*app.sinks, monitor], max_frames=frames, faults=cfg.service)
    try:
        best, depth = source.best_position, source.depth_of_field
        loop.run()
        state = app.autofocus.state
    finally:
        loop.close()
    return monitor.status().vcurve, state, best, depth


def vcurve_plot(points: Sequence[tuple[float, float]], best: Optional[float] = None,
                final: Optional[float] = None, size=(900, 420)) -> np.ndarray:
    """Star size against lens position: every measured frame, the hyperbola fitted to them
    (``device.lens.vcurve.fit_vcurve``, the autofocus's own fit), the true best position
    (green) and where the autofocus left the lens (orange)."""
    from device.lens.vcurve import fit_vcurve

    img = np.full((size[1], size[0], 3), WHITE, np.uint8)
    left, right, top, bottom = 62, 14, 26, 40
    pw, ph = size[0] - left - right, size[1] - top - bottom
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    _text(img, "Star autofocus: HFR per frame against lens position, and the V-curve fit",
          (4, 17), 0.5)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), GRID, 1)
    if len(points) < 2:
        _text(img, "no stars measured", (left + 10, top + 30))
        return img
    marks = [v for v in (best, final) if v is not None]
    x_lo, x_hi = min(xs + marks), max(xs + marks)
    x_lo, x_hi = x_lo - 0.04 * (x_hi - x_lo + 1), x_hi + 0.04 * (x_hi - x_lo + 1)
    y_hi = 1.08 * max(ys)

    def X(v):
        return int(round(left + pw * (v - x_lo) / (x_hi - x_lo)))

    def Y(v):
        return int(round(top + ph * (1 - v / y_hi)))

    for t in _nice_ticks(0.0, y_hi):
        cv2.line(img, (left, Y(t)), (left + pw, Y(t)), GRID, 1)
        _text(img, _fmt(t), (4, Y(t) + 4), 0.4)
    for t in _nice_ticks(x_lo, x_hi, 6):
        cv2.line(img, (X(t), top + ph), (X(t), top + ph + 4), INK, 1)
        _text(img, f"{t:.0f}", (X(t) - 12, top + ph + 18), 0.4)
    _text(img, "lens position (steps)", (left + pw - 170, top + ph + 34), 0.4)
    _text(img, "HFR (px)", (left + 6, top + 16), 0.4, BLUE)
    fit = fit_vcurve(xs, ys)
    if math.isfinite(fit.a) and math.isfinite(fit.b):
        gx = np.linspace(min(xs), max(xs), 200)
        gy = np.sqrt(np.maximum(fit.a + fit.b * (gx - fit.vertex) ** 2, 0.0))
        pts = np.array([(X(a), Y(b)) for a, b in zip(gx, gy) if b <= y_hi], np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, ORANGE, 1, cv2.LINE_AA)
        _text(img, f"fit: minimum at {fit.vertex:.1f}, R^2 {fit.r2:.3f}", (left + 90, top + 16),
              0.4, ORANGE)
    for x, y in points:
        cv2.circle(img, (X(x), Y(y)), 3, BLUE, -1, cv2.LINE_AA)
    if best is not None:
        cv2.line(img, (X(best), top), (X(best), top + ph), GREEN, 1)
        _text(img, f"best {best:.0f}", (X(best) + 4, top + ph - 8), 0.4, GREEN)
    if final is not None:
        cv2.line(img, (X(final), top + 20), (X(final), top + ph), ORANGE, 2)
        _text(img, f"AF {final:.0f}", (X(final) + 4, top + 34), 0.4, ORANGE)
    return img


# --- files -------------------------------------------------------------------------

def write_png(path: Path, img: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OSError(f"could not encode {path.name}")
    atomic_write_bytes(path, buf.tobytes())
    return path


def write_index(out: Path, summary: Sequence[str], pictures: Sequence[tuple[str, str]]) -> Path:
    """``index.html``: the summary and each (file name, caption), self-contained (no
    scripts, fonts or anything from another site: a Pi is often offline)."""
    figs = "\n".join(
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(cap)}">'
        f"<figcaption>{html.escape(cap)}</figcaption></figure>" for name, cap in pictures)
    items = "\n".join(f"<li>{html.escape(line)}</li>" for line in summary)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>focus-assist demo</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 960px; padding: 0 1em; color: #222; }}
img {{ max-width: 100%; height: auto; border: 1px solid #ccc; }}
figure {{ margin: 1.5em 0; }} figcaption {{ color: #555; }}
</style></head><body>
<h1>focus-assist demo</h1>
<ul>
{items}
</ul>
{figs}
</body></html>
"""
    path = out / "index.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
