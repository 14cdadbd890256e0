"""The optics inspector: sensor tilt and field curvature from one focus sweep.

Every frame of the sweep is reduced to the classic per-tile focus map the live scorer
makes (``device.scoring.measures.score_frame``, at native scale as ``sweep`` ranks stills),
on the inspector's grid. Each region's curve over the sweep gets the peak finder ``sweep``
uses (``refine_peak``), so a region's best focus is a fractional frame index. A region
whose curve hardly rises (a smooth wall, the sky) or that peaks on the first or last frame
(its focus lies outside the sweep) is left undecided (``best_positions``).

A plane ``p = a + bx*x + by*y`` and a bowl (the plane plus ``c*(x^2 + y^2)``) are fitted
by least squares to the decided regions, with ``x`` and ``y`` running from -1 at the left
and top edges of the frame to +1 at the right and bottom edges. So ``tilt.x`` (right edge
minus left edge) is ``2*bx`` and ``curvature`` (centre minus the mean of the corners) is
``-2c``, whatever the grid. A flat target seen through a tilted sensor gives a plane; a
lens with field curvature a bowl. When neither fits (``fit_rms`` above ``DEPTH_RMS`` frames,
or above the noise and leaving more than a tenth of the map's variance unexplained) the
regions look at subjects at different distances: depth in the scene, which the summary
names instead of calling it a tilt.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from device.errors import InputError
from device.scoring.measures import refine_peak, score_frame

MIN_FRAMES = 3
MIN_RISE = 0.5           # a region's best must beat its curve's lowest point by 50%...
SIDE_DROP = 0.05         # ...and the lowest on each side of it by 5%
TILT_FRAMES = 1.0        # tilt or curvature under one frame is "none measurable"
DEPTH_RMS = 0.5          # frames: a map this far from a bowl is scene depth, not optics,
NOISE_RMS = 0.2          # and so is one above the peak finder's noise that the bowl
MIN_EXPLAINED = 0.9      # explains less than 90% of (a sweep in finer steps has more frames)
MIN_DOF = 2              # residual degrees of freedom needed to tell depth from a tilt

UNDECIDED_FLAT = "too little detail: its focus measure hardly changes over the sweep"
UNDECIDED_EDGE = "sharpest on the first or last frame: its focus lies outside the sweep"


@dataclass(frozen=True)
class Undecided:
    row: int
    col: int
    reason: str


@dataclass(frozen=True)
class SurfaceFit:
    """The best-focus surface in one unit (frames, or motor steps)."""
    grid: tuple                       # rows of best positions, None where undecided
    tilt_x: Optional[float]           # right edge minus left edge
    tilt_y: Optional[float]           # bottom edge minus top edge
    curvature: Optional[float]        # centre minus the mean of the corners
    fit_rms: Optional[float]          # residual of the fitted surface (bowl if fitted)
    plane_rms: Optional[float]        # residual of the plane alone
    dof: int = 0                      # decided regions minus fitted terms
    map_rms: Optional[float] = None   # spread of the map about its mean (what a fit explains)

    def to_json(self) -> dict:
        return {"grid": [list(r) for r in self.grid], "tilt": {"x": self.tilt_x, "y": self.tilt_y},
                "curvature": self.curvature, "fit_rms": self.fit_rms, "plane_rms": self.plane_rms,
                "dof": self.dof, "map_rms": self.map_rms}


@dataclass(frozen=True)
class Inspection:
    frames: int
    grid_shape: tuple[int, int]
    curves: np.ndarray                # (frames, rows, cols) focus per region
    sharpest_frame: int               # of the whole frame (the plot's thumbnail)
    undecided: tuple                  # Undecided regions
    fit: SurfaceFit                   # in frames
    steps: Optional[SurfaceFit]       # in motor steps, when the frames carry lens positions
    verdict: str                      # tilt | depth | curvature | level | undecided
    summary: str

    def to_json(self) -> dict:
        out = {k: v for k, v in self.fit.to_json().items()}
        out.update(frames=self.frames, sharpest_frame=self.sharpest_frame,
                   undecided=[{"row": u.row, "col": u.col, "reason": u.reason}
                              for u in self.undecided],
                   verdict=self.verdict, summary=self.summary,
                   steps=None if self.steps is None else self.steps.to_json())
        return out


def parse_grid(text: str) -> tuple[int, int]:
    """``"ROWSxCOLS"`` -> (rows, cols), each 1..16 and at least 3 regions in all."""
    parts = text.lower().split("x")
    try:
        rows, cols = (int(p) for p in parts)
    except ValueError:
        raise InputError(f"grid must be ROWSxCOLS (e.g. 3x3), got {text!r}") from None
    if not (1 <= rows <= 16 and 1 <= cols <= 16) or rows * cols < 3:
        raise InputError(f"grid {text!r}: rows and columns must be 1..16, at least 3 regions")
    return rows, cols


def region_curves(greys: Sequence[np.ndarray], grid: tuple[int, int]) -> np.ndarray:
    """(frames, rows, cols) focus of each region of each frame, the live scorer's tile map."""
    if len(greys) < MIN_FRAMES:
        raise InputError(f"inspect needs at least {MIN_FRAMES} frames of a sweep, got {len(greys)}")
    shape = greys[0].shape
    for i, g in enumerate(greys):
        if g.shape != shape:
            raise InputError(f"frame {i} is {g.shape[1]}x{g.shape[0]}, frame 0 "
                             f"{shape[1]}x{shape[0]}: a sweep's frames must all be one size")
    maps = [score_frame(g, grid=grid, native=True).tile_map for g in greys]
    if maps[0].shape != tuple(grid):
        raise InputError(f"a {grid[0]}x{grid[1]} grid does not fit {shape[1]}x{shape[0]} frames")
    return np.stack(maps).astype(np.float64)


def best_positions(curves: np.ndarray, min_rise: float = MIN_RISE
                   ) -> tuple[np.ndarray, list[Undecided]]:
    """Each region's refined best frame (NaN where undecided) and why the others are.

    Decided: the curve rises by ``min_rise`` over its lowest point (noise on a blank wall
    moves it about 20%) and falls by ``SIDE_DROP`` on both sides of its peak (a peak one
    frame from the sweep's end has only a short side)."""
    n, rows, cols = curves.shape
    best = np.full((rows, cols), np.nan)
    undecided: list[Undecided] = []
    for r in range(rows):
        for c in range(cols):
            v = curves[:, r, c]
            i, refined = refine_peak(v)
            if v[i] < (1 + min_rise) * v.min():
                undecided.append(Undecided(r, c, UNDECIDED_FLAT))
            elif i == 0 or i == n - 1 or v[i] < (1 + SIDE_DROP) * max(v[:i].min(), v[i + 1:].min()):
                undecided.append(Undecided(r, c, UNDECIDED_EDGE))
            else:
                best[r, c] = refined
    return best, undecided


def _centres(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Region centres in edge-normalised coordinates (-1 left/top .. +1 right/bottom)."""
    xs = (np.arange(cols) + 0.5) / cols * 2 - 1
    ys = (np.arange(rows) + 0.5) / rows * 2 - 1
    return np.meshgrid(xs, ys)


def _lstsq(cols: list[np.ndarray], z: np.ndarray) -> Optional[np.ndarray]:
    a = np.stack(cols, axis=1)
    coef, _res, rank, _sv = np.linalg.lstsq(a, z, rcond=None)
    return coef if rank == a.shape[1] else None


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def fit_surface(best: np.ndarray, decimals: int = 3) -> SurfaceFit:
    """Plane and bowl fits to a best-focus map (NaN = undecided); see the module docstring."""
    rows, cols = best.shape
    gx, gy = _centres(rows, cols)
    ok = np.isfinite(best)
    x, y, z = gx[ok], gy[ok], best[ok]
    one = np.ones_like(z)
    grid = tuple(tuple(None if not np.isfinite(v) else round(float(v), decimals) for v in row)
                 for row in best)
    if z.size < 3:
        return SurfaceFit(grid, None, None, None, None, None)
    # A term is fitted only along an axis the decided regions span (a 1-row grid has no y).
    terms = [("a", one)]
    if np.unique(x).size >= 2:
        terms.append(("x", x))
    if np.unique(y).size >= 2:
        terms.append(("y", y))
    plane = _lstsq([t for _, t in terms], z)
    if plane is None:
        return SurfaceFit(grid, None, None, None, None, None)
    names = [n for n, _ in terms]
    plane_resid = z - np.stack([t for _, t in terms], 1) @ plane
    coef, resid = dict(zip(names, plane)), plane_resid
    curvature = None
    dof = z.size - len(terms)
    # The bowl only with residual degrees of freedom left and three distinct positions on
    # both axes: with two rows x^2 + y^2 is a term in x alone, and any bend would pass for
    # field curvature.
    bowl_terms = terms + [("c", x * x + y * y)]
    if (z.size >= len(bowl_terms) + MIN_DOF and np.unique(x).size >= 3
            and np.unique(y).size >= 3):
        bowl = _lstsq([t for _, t in bowl_terms], z)
        if bowl is not None:
            coef = dict(zip(names + ["c"], bowl))
            resid = z - np.stack([t for _, t in bowl_terms], 1) @ bowl
            curvature = -2.0 * float(coef["c"])
            dof = z.size - len(bowl_terms)

    def r(v):
        return None if v is None else round(float(v), decimals)

    return SurfaceFit(grid, r(2 * coef["x"]) if "x" in coef else None,
                      r(2 * coef["y"]) if "y" in coef else None, r(curvature),
                      r(_rms(resid)), r(_rms(plane_resid)), int(dof), r(_rms(z - z.mean())))


def to_steps(best: np.ndarray, lens_positions: Sequence[float]) -> np.ndarray:
    """Fractional frame indices -> lens positions, interpolated between the frames'."""
    pos = np.asarray(lens_positions, dtype=np.float64)
    out = np.full(best.shape, np.nan)
    ok = np.isfinite(best)
    out[ok] = np.interp(best[ok], np.arange(pos.size), pos)
    return out


def _side(value: float, axis: str) -> str:
    """Which side focuses first (closer to the sweep's start) for a tilt along ``axis``."""
    first, last = ("left", "right") if axis == "x" else ("top", "bottom")
    return (first, last) if value > 0 else (last, first)


def describe(fit: SurfaceFit, undecided: Sequence[Undecided], regions: int,
             unit: str = "frames") -> tuple[str, str]:
    """(verdict, summary in words) of a fit in frames."""
    parts: list[str] = []
    if fit.fit_rms is None:
        return "undecided", (f"Only {regions - len(undecided)} of {regions} regions have a focus "
                             "peak in the sweep: too few to fit; sweep further or use a target "
                             "with detail everywhere")
    if fit.dof < MIN_DOF:
        return "undecided", (f"Only {regions - len(undecided)} decided regions: too few to tell "
                             "a tilt from depth in the scene; use a 3x3 grid or finer")
    explained = 1 - (fit.fit_rms / fit.map_rms) ** 2 if fit.map_rms else 1.0
    if fit.fit_rms > DEPTH_RMS or (fit.fit_rms > NOISE_RMS and explained < MIN_EXPLAINED):
        verdict = "depth"
        parts.append(f"the best-focus map is not a plane or a bowl (fit rms {fit.fit_rms:.2f} "
                     f"{unit}): the regions see subjects at different distances, depth in the "
                     "scene, not a tilt; to check the sensor and lens, sweep a flat target "
                     "with detail everywhere (a printed page, a brick wall) square to the camera")
    else:
        tilts = [(a, v) for a, v in (("x", fit.tilt_x), ("y", fit.tilt_y))
                 if v is not None and abs(v) >= TILT_FRAMES]
        for axis, v in tilts:
            first, last = _side(v, axis)
            about = "vertical" if axis == "x" else "horizontal"
            parts.append(f"the {first} side focuses {abs(v):.1f} {unit} before the {last}: the "
                         f"sensor or lens is tilted about the {about} axis")
        curv = fit.curvature
        if curv is not None and abs(curv) >= TILT_FRAMES:
            where = "after" if curv > 0 else "before"
            parts.append(f"the centre focuses {abs(curv):.1f} {unit} {where} the corners: "
                         "field curvature (stop down, or focus on the subject's part that matters)")
        elif curv is not None:
            parts.append("no measurable field curvature")
        if not tilts:
            parts.insert(0, f"no measurable tilt (under {TILT_FRAMES:g} frame on both axes)")
        verdict = "tilt" if tilts else ("curvature" if curv is not None and abs(curv) >= TILT_FRAMES
                                        else "level")
    if undecided:
        names = ", ".join(f"r{u.row}c{u.col}" for u in undecided)
        parts.append(f"{len(undecided)} of {regions} regions undecided ({names})")
    text = "; ".join(parts)
    return verdict, text[0].upper() + text[1:]


def inspect_sweep(greys: Sequence[np.ndarray], grid: tuple[int, int] = (3, 3), *,
                  lens_positions: Optional[Sequence[float]] = None,
                  min_rise: float = MIN_RISE) -> Inspection:
    """The whole inspection of a sweep in lens order; InputError when nothing peaks."""
    curves = region_curves(greys, grid)
    if lens_positions is not None and len(lens_positions) != len(greys):
        raise InputError(f"{len(lens_positions)} lens positions for {len(greys)} frames")
    return inspect_curves(curves, lens_positions=lens_positions, min_rise=min_rise)


def inspect_curves(curves: np.ndarray, *, lens_positions: Optional[Sequence[float]] = None,
                   min_rise: float = MIN_RISE) -> Inspection:
    """The inspection of per-region focus curves ``(frames, rows, cols)`` in lens order
    (``inspect_sweep`` makes them from images; the live inspector from the tile maps the
    loop already has); InputError when nothing peaks."""
    curves = np.asarray(curves, dtype=np.float64)
    n, rows, cols = curves.shape
    if n < MIN_FRAMES:
        raise InputError(f"inspect needs at least {MIN_FRAMES} frames of a sweep, got {n}")
    best, undecided = best_positions(curves, min_rise)
    regions = rows * cols
    if not np.isfinite(best).any():
        raise InputError(f"no region of the {rows}x{cols} grid has a focus peak inside "
                         "the sweep (does the sweep pass through focus?)")
    fit = fit_surface(best)
    steps = None
    if lens_positions is not None:
        if len(lens_positions) != n:
            raise InputError(f"{len(lens_positions)} lens positions for {n} frames")
        steps = fit_surface(to_steps(best, lens_positions), decimals=1)
    verdict, summary = describe(fit, undecided, regions)
    sharpest = int(np.argmax(curves.mean(axis=(1, 2))))
    return Inspection(frames=n, grid_shape=(rows, cols), curves=curves,
                      sharpest_frame=sharpest, undecided=tuple(undecided), fit=fit, steps=steps,
                      verdict=verdict, summary=summary)


def even_positions(curves: np.ndarray, positions: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Curves sampled at uneven, unsorted lens positions (an autofocus scan: a coarse sweep,
    then fine steps back over the peak; a hand on the ring) -> the same curves on an even
    grid of positions in lens order, spaced by the median step between distinct positions.

    Frames at one position are averaged, and each region's curve is interpolated linearly
    between the positions visited, so the peak finder sees the curve against the lens, not
    against time. Returns ``(curves, grid positions)``; InputError with under 3 positions."""
    pos = np.asarray(positions, dtype=np.float64)
    curves = np.asarray(curves, dtype=np.float64)
    if pos.shape[0] != curves.shape[0]:
        raise InputError(f"{pos.shape[0]} lens positions for {curves.shape[0]} frames")
    ok = np.isfinite(pos)
    pos, curves = pos[ok], curves[ok]
    uniq, inv = np.unique(np.round(pos, 3), return_inverse=True)
    if uniq.size < MIN_FRAMES:
        raise InputError(f"the pass visited {uniq.size} lens positions: at least {MIN_FRAMES} needed")
    flat = curves.reshape(curves.shape[0], -1)
    sums = np.zeros((uniq.size, flat.shape[1]))
    np.add.at(sums, inv, flat)
    mean = sums / np.bincount(inv, minlength=uniq.size)[:, None]
    step = float(np.median(np.diff(uniq)))
    # At most four samples per position visited: a few wide coarse steps and one creep of
    # fine ones would otherwise spread a short curve over thousands of samples.
    count = min(int(round((uniq[-1] - uniq[0]) / step)) + 1, 4 * uniq.size)
    grid = np.linspace(uniq[0], uniq[-1], max(count, MIN_FRAMES))
    even = np.stack([np.interp(grid, uniq, mean[:, k]) for k in range(flat.shape[1])], axis=1)
    return even.reshape((grid.size,) + curves.shape[1:]), grid
