"""Star autofocus: minimise star size (HFR or FWHM) with a V-curve, as Ekos and N.I.N.A. do.

A star's size against the focuser position is a hyperbola, ``size = sqrt(A + B (x - c)^2)``:
the seeing's size in focus, growing linearly with the defocus (the pupil image) away from
it. Squared, it is a parabola in ``x``, so ``fit_vcurve`` solves it in closed form by least
squares on ``size^2`` and refines ``A, B, c`` by a few Gauss-Newton steps on ``size``
itself; its R^2 says whether the samples really make a V.

``vcurve_search`` is a generator speaking the protocol of ``device.lens.search``
(``("measure", p)`` answered with ``(size, consistent)``, ``("go", p)`` with None), so the
``Autofocus`` sink drives it exactly like the contrast search: it moves the motor with
every final approach from the same side (backlash), drops the frames exposed while moving
and averages several frames per position. The search:

1. Measure where the lens is, then step (``step``) towards smaller stars: the first step
   goes towards the larger part of the travel; if the stars grew, it turns round. Where
   the size hardly changes (far out, the donuts stop growing at the frame's limit) the
   stride doubles, up to 4 steps.
2. Walk on until the stars have grown past the smallest on both sides: ``out_steps``
   samples beyond it, or two once the size is 1.5x the smallest.
3. Fit the hyperbola through the samples near the minimum. Accept only R^2 >= ``min_r2``
   with the vertex inside the sampled range; a vertex beyond it extends the scan on that
   side (twice at most). Otherwise fail, back to the start.
4. Go to the vertex and measure there; if the stars there are clearly larger than the
   smallest sampled (a bad fit), settle on the smallest sample instead.

No stars (NaN size) at the start or during the scan (clouds) fails safely back to the start.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Generator, Optional

import numpy as np

from device.lens.search import FAILED, FOCUSED, Outcome, Request

log = logging.getLogger(__name__)

GROWN = 1.5          # a sample this much larger than the smallest is clearly "grown"
FLAT = 0.05          # relative change below which two samples are "no change"
MAX_STRIDE = 4


@dataclass(frozen=True)
class VCurveFit:
    """The hyperbola ``size = sqrt(a + b (x - vertex)^2)`` fitted to a V-curve."""
    ok: bool
    vertex: float        # position of the minimum
    min_size: float      # sqrt(a): the fitted size at the vertex
    r2: float
    reason: str
    a: float = math.nan
    b: float = math.nan

    def to_json(self) -> dict:
        return {"ok": self.ok, "vertex": round(self.vertex, 3), "min_size": round(self.min_size, 4),
                "r2": round(self.r2, 4), "reason": self.reason}


def _model(x, a, b, c):
    return np.sqrt(np.maximum(a + b * (x - c) ** 2, 1e-12))


def fit_vcurve(xs, ys, min_r2: float = 0.8) -> VCurveFit:
    """Fit the hyperbola to (position, size) samples; NaN sizes are left out."""
    x = np.asarray(xs, np.float64)
    y = np.asarray(ys, np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & (y > 0)
    x, y = x[keep], y[keep]
    nan = math.nan
    if x.size < 3 or np.ptp(x) == 0:
        return VCurveFit(False, nan, nan, nan, f"too few samples with stars ({x.size})")
    # size^2 = a + b (x - c)^2 = (a + b c^2) - 2 b c x + b x^2: linear least squares.
    x0, sx = x.mean(), max(float(np.ptp(x)), 1e-9)
    u = (x - x0) / sx                                   # conditioned
    p2, p1, p0 = np.polyfit(u, y * y, 2)
    if p2 <= 0:
        return VCurveFit(False, float(x[np.argmin(y)]), float(y.min()), 0.0,
                         "no V: the star size does not rise on both sides")
    cu = -p1 / (2 * p2)
    a = max(p0 - p2 * cu * cu, 1e-6)
    params = np.array([a, p2, cu])
    for _ in range(8):   # Gauss-Newton on the size itself (the squares overweight the tails)
        a_, b_, c_ = params
        m = _model(u, a_, b_, c_)
        jac = np.stack([0.5 / m, 0.5 * (u - c_) ** 2 / m, -b_ * (u - c_) / m], axis=1)
        step, *_ = np.linalg.lstsq(jac, y - m, rcond=None)
        new = params + step
        new[0] = max(new[0], 1e-6)
        if new[1] <= 0:
            break
        params = new
        if np.all(np.abs(step) < 1e-9 + 1e-6 * np.abs(params)):
            break
    a_, b_, c_ = params
    pred = _model(u, a_, b_, c_)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else 0.0
    vertex = x0 + c_ * sx
    out = dict(vertex=float(vertex), min_size=float(math.sqrt(a_)), r2=r2, a=float(a_),
               b=float(b_ / (sx * sx)))
    if r2 < min_r2:
        return VCurveFit(False, reason=f"poor fit: R^2 {r2:.2f} < {min_r2}", **out)
    if not x.min() <= vertex <= x.max():
        return VCurveFit(False, reason=f"the minimum {vertex:.0f} lies outside the samples "
                                       f"{x.min():.0f}..{x.max():.0f}", **out)
    return VCurveFit(True, reason=f"V-curve minimum at {vertex:.1f} (R^2 {r2:.2f})", **out)


def vcurve_search(p0: int, limits: tuple[int, int], *, step: int, out_steps: int = 4,
                  min_r2: float = 0.8, why_none: Callable[[], str] = lambda: "no stars found",
                  ) -> Generator[Request, Optional[tuple[float, bool]], Outcome]:
    """The star-size V-curve search as a generator (see the module docstring).

    ``why_none`` explains a NaN size (e.g. "clouds: star count fell from 40 to 3")."""
    lo, hi = limits
    step = max(1, int(step))
    raw: dict[int, float] = {}
    good: dict[int, float] = {}

    def clamp(p: float) -> int:
        return int(min(max(round(p), lo), hi))

    def record(p: int, answer) -> float:
        value, consistent = answer
        value = float(value)
        raw[p] = value
        if consistent and math.isfinite(value):
            good[p] = value
        else:
            good.pop(p, None)
        return value

    def fail(why: str):
        log.info("star autofocus failed: %s", why)
        return Outcome(FAILED, why, p0)

    if not math.isfinite(record(p0, (yield ("measure", p0)))):
        yield ("go", p0)
        return fail(f"{why_none()} at the start ({p0})")

    def best() -> int:
        return min(raw, key=raw.get)

    def grown(side: int) -> bool:
        b = best()
        beyond = sorted((p for p in raw if (p - b) * side > 0), key=lambda p: abs(p - b))
        if len(beyond) >= out_steps:
            return True
        return len(beyond) >= 2 and raw[beyond[-1]] >= GROWN * raw[b]

    def measure(q: int):
        return record(q, (yield ("measure", q)))

    # 1. Which way is downhill: the first step goes towards the larger part of the travel.
    direction = 1 if hi - p0 >= p0 - lo else -1
    p = clamp(p0 + direction * step)
    if p != p0:
        v = yield from measure(p)
        if not math.isfinite(v):
            yield ("go", p0)
            return fail(f"{why_none()} at {p} (clouds?)")
        if v > raw[p0] * (1 + FLAT):
            direction, p = -direction, p0
    else:
        direction = -direction
    # 2. Walk downhill until the stars grew past the smallest (stride out where flat).
    stride = 1
    while not grown(direction):
        q = clamp(p + direction * stride * step)
        if q == p:
            break                                   # a travel limit
        prev = raw[p]
        v = yield from measure(q)
        if not math.isfinite(v):
            yield ("go", p0)
            return fail(f"{why_none()} at {q} (clouds?)")
        flat = abs(v / prev - 1) < FLAT and v > GROWN * raw[best()]
        stride = min(stride * 2, MAX_STRIDE) if flat else 1
        p = q
    # 3. Samples at one-step spacing on both sides of the smallest, until grown on both.
    for _ in range(4 * out_steps):
        b = best()
        todo = None
        for side in (-1, 1):
            for k in range(1, out_steps + 1):
                if k > 2 and grown(side):
                    break
                q = clamp(b + side * k * step)
                if q == b:
                    break
                if all(abs(q - s) >= step / 2 for s in raw):
                    todo = q
                    break
            if todo is not None:
                break
        if todo is None:
            break
        if not math.isfinite((yield from measure(todo))):
            yield ("go", p0)
            return fail(f"{why_none()} at {todo} (clouds?)")
    fit = None
    for _ in range(3):
        b = best()
        window = {x: y for x, y in good.items() if abs(x - b) <= step * (out_steps + 1)}
        fit = fit_vcurve(list(window), list(window.values()), min_r2)
        if fit.ok or not math.isfinite(fit.vertex) or fit.r2 < min_r2:
            break
        side = 1 if fit.vertex > max(window) else -1            # the vertex lies beyond: extend
        q = clamp((max(window) if side > 0 else min(window)) + side * step)
        if q in raw:
            break
        if not math.isfinite((yield from measure(q))):
            yield ("go", p0)
            return fail(f"{why_none()} at {q} (clouds?)")
    if fit is None or not fit.ok:
        yield ("go", p0)
        return fail(fit.reason if fit is not None else "no V-curve")
    target = clamp(fit.vertex)
    smallest = min(good.values())
    v = record(target, (yield ("measure", target)))
    if not math.isfinite(v) or v > 1.3 * smallest:
        target = min(good, key=good.get)
        yield ("go", target)
        return Outcome(FOCUSED, f"smallest stars at {target} (the fit's minimum measured "
                                f"{v:.2f} px); {fit.reason}", target)
    yield ("go", target)
    return Outcome(FOCUSED, f"{fit.reason}; star size {v:.2f} px", target)


class StarSize:
    """The autofocus's per-frame value in star mode: the median HFR or FWHM, NaN (with
    ``why()`` saying why) when no stars are found or clouds took most of the starlight."""

    CLOUD_SHARE = 0.25  # starlight below this share of the run's best: clouds

    def __init__(self, measure: str, cfg, roi=None):
        from device.scoring.stars import measure_stars

        self._measure_stars = measure_stars
        self.measure = measure
        self.cfg = cfg
        self.roi = tuple(roi) if roi else None
        self.last = None
        self._why = "no stars found"
        self._best_flux = 0.0
        self._best_count = 0

    def reset(self) -> None:
        self._best_flux, self._best_count = 0.0, 0

    def why(self) -> str:
        return self._why

    def __call__(self, frame, result=None) -> float:
        field = self._measure_stars(frame.grey, self.roi, self.cfg)
        self.last = field
        if field.count < self.cfg.min_stars:
            self._why = field.status
            return math.nan
        # Defocus spreads the light but keeps it: a large drop in starlight is a cloud.
        flux = field.light
        if flux < self.CLOUD_SHARE * self._best_flux:
            self._why = f"clouds: star count fell from {self._best_count} to {field.count}"
            return math.nan
        if flux > self._best_flux:
            self._best_flux, self._best_count = flux, field.count
        return field.size(self.measure)


def star_autofocus(measure: str, stars_cfg, *, default_step: int, roi=None):
    """The (measure, search factory) pair the ``Autofocus`` sink takes in star mode."""
    size = StarSize(measure, stars_cfg, roi)
    step = stars_cfg.af_step or default_step

    def search(p0, limits, coarse, fine, first_step):
        size.reset()
        return vcurve_search(p0, limits, step=step, out_steps=stars_cfg.af_out_steps,
                             min_r2=stars_cfg.min_r2, why_none=size.why)

    return size, search
