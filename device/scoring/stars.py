"""Star measures: the sky's background and noise, star detection, and each star's size.

A star field is black sky, noise and a few points; contrast measures are dominated by the
noise there, so astronomers focus on star size instead (KStars/Ekos, N.I.N.A., ASTAP).

1. **Background and noise**: the frame is binned 4x4 (detection then sees 1/16 of the
   pixels and a quarter of the noise) and cut into tiles; each tile is sampled on every
   other binned pixel and sorted once: its noise is the interquartile range / 1.349, its
   level the median within 3 sigma. A 3x3 median over the tile grid drops tiles a bright
   star dominates.
2. **Detection**: the background-subtracted binned frame, smoothed by a small Gaussian
   (a matched filter for a few-pixel star), above ``k_sigma`` times the smoothed noise, in
   connected regions of at least ``min_area`` binned pixels. A defocused star is a donut
   (the pupil image of an obstructed telescope); its ring is one connected region, so it
   is found like a point.
3. **Rejection**: a one-pixel spike is a hot pixel (its second-brightest pixel is under
   a third of its peak, where a star's neighbour is over half); a region whose aperture
   crosses the frame edge, one stretched like two stars (bounding box aspect over 1.6, or
   the light's second moments an ellipticity over 0.3; over 0.6 already in the first
   aperture, which a donut cut by it never reaches) or one whose aperture overlaps
   another's is a blend; a peak at ``saturation`` is counted
   as saturated and kept out of the medians (its flat top makes it look large).
4. **Per star**, on full-resolution stamps: every star is first measured within a 7 px
   aperture (99.8% of an in-focus star's light); one whose half-flux radius fills that
   aperture (a donut, a bloated star) is measured again within one grown to its detected
   extent or 1.6 HFR + 3 px. Measured are the flux-weighted centroid, flux and peak above
   the local sky, the **HFR** (the radius enclosing half the flux, from the light summed
   in 0.25 px rings and interpolated within the ring that crosses half) and the **FWHM**
   (the diameter of the circle whose area is that of the pixels above half the peak).

Everything is vectorised over the stars (one stamp batch per aperture size, one
``bincount`` for all the rings), so 100 stars on a 1332x990 frame cost a few milliseconds
(``bench/bench_stars.py``; figures in docs/stars.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from device.common.preprocess import grey_plane
from device.common.roi import check_roi
from device.config.stars import StarsConfig

NO_STARS = "no stars found"
ALL_SATURATED = "all stars saturated"
BIN = 4                 # detection runs on 4x4 means: 1/16 of the pixels, 1/4 of the noise
_SMOOTH_SIGMA = 1.0     # binned px: a matched filter for an in-focus star
_SMOOTH_KSIZE = 5
_MAX_CANDIDATES = 2000  # a cloud edge or a lit frame is not 10^5 stars: keep the biggest
_MAX_APERTURE = 48.0
_FIRST_APERTURE = 7.0   # px: holds 99.8% of an in-focus star (Moffat, FWHM 2.6 px)
_GROW_PASSES = 3
_RING = 0.25            # px: the rings the half-flux radius is interpolated in
MAX_ELLIPTICITY = 0.3   # (a^2 - b^2) / (a^2 + b^2) of the light: above it, two stars in one
TWO_STARS = 0.6         # ...and above this even in the first aperture, which can cut a donut


@dataclass(frozen=True)
class Star:
    """One measured star; positions and sizes in frame pixels (ROI offset added)."""
    x: float
    y: float
    flux: float         # above the local sky, in the frame's units (summed)
    peak: float         # brightest pixel above the sky
    hfr: float
    fwhm: float
    saturated: bool


@dataclass(frozen=True)
class StarField:
    """One frame's stars and their medians (NaN sizes when no usable star was found)."""
    width: int
    height: int
    stars: tuple[Star, ...]   # accepted stars, saturated ones included (flagged)
    count: int                # unsaturated stars: the ones the medians use
    saturated: int
    hfr: float                # median HFR, px
    fwhm: float               # median FWHM, px
    hfr_spread: float         # 1.4826 * MAD of the HFRs (robust sigma)
    background: float         # median sky level, frame units
    noise: float              # sky noise per frame pixel, frame units
    rejected_hot: int
    rejected_edge: int
    rejected_blend: int
    light: float = 0.0        # all light above the sky, summed (clouds dim it, defocus not)

    @property
    def status(self) -> str:
        if self.count:
            return "ok"
        return ALL_SATURATED if self.saturated else NO_STARS

    def size(self, measure: str) -> float:
        """``"hfr"`` or ``"fwhm"``: the median the autofocus and the sweep minimise."""
        return self.hfr if measure == "hfr" else self.fwhm


def _plane(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The grey plane in the input's own depth (stamps are cut from it and only they are
    converted to float), and its full scale."""
    img = grey_plane(image)
    if img.dtype == np.uint8:
        return img, 255.0
    if img.dtype == np.uint16:
        return img, 65535.0
    img = img.astype(np.float32, copy=False)
    top = float(np.nanmax(img)) if img.size else 1.0
    return img, (1.0 if top <= 1.0 else top)


def _bin(plane: np.ndarray, h2: int, w2: int) -> np.ndarray:
    """BIN x BIN means as float32, summed by strided adds (faster here than an integral
    image or ``cv2.resize``) in an integer type wide enough for the input's depth."""
    acc = {np.dtype(np.uint8): np.uint16, np.dtype(np.uint16): np.uint32}.get(plane.dtype, np.float32)
    src = plane[:BIN * h2, :BIN * w2]
    rows = src[0::BIN].astype(acc)
    for k in range(1, BIN):
        rows += src[k::BIN]
    box = rows[:, 0::BIN].copy()
    for k in range(1, BIN):
        box += rows[:, k::BIN]
    return box.astype(np.float32) * np.float32(1.0 / (BIN * BIN))


def _robust_stats(samples: np.ndarray, passes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Sky level and noise of each row, from one sort: the noise is the interquartile
    range / 1.349 (a Gaussian's sigma, which a star's few pixels do not move), the level
    the median of the samples within 3 sigma of the level before (a plain median still
    leans toward the stars, and ``light`` sums that lean over every pixel)."""
    v = np.sort(samples, axis=-1)
    rows, n = v.shape
    sigma = (v[:, (3 * n) // 4] - v[:, n // 4]).astype(np.float32) / np.float32(1.349)
    med = v[:, n // 2]
    for _ in range(passes):
        i0 = np.count_nonzero(v < (med - 3 * sigma)[:, None], axis=1)
        i1 = np.maximum(np.count_nonzero(v <= (med + 3 * sigma)[:, None], axis=1), i0 + 1)
        med = v[np.arange(rows), (i0 + i1 - 1) // 2]
    return med.astype(np.float64), sigma.astype(np.float64)


def background(binned: np.ndarray, tile: int) -> tuple[np.ndarray, float, float]:
    """The sky level map (binned frame's shape), its median and the median tile noise.

    Each tile's statistics are read off every other binned pixel in each direction: a
    few hundred samples per tile give the same level and noise as all of them."""
    h, w = binned.shape
    t = max(4, min(tile, h, w))
    step = 2 if t >= 8 else 1
    t -= t % step
    ny, nx = max(1, h // t), max(1, w // t)
    m = t // step
    tiles = (binned[:ny * t:step, :nx * t:step].reshape(ny, m, nx, m)
             .transpose(0, 2, 1, 3).reshape(ny * nx, -1))
    med, std = _robust_stats(tiles)
    grid = med.reshape(ny, nx).astype(np.float32)
    if ny >= 3 and nx >= 3:
        grid = cv2.medianBlur(grid, 3)
    level = cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
    return level, float(np.median(grid)), float(np.median(std))


def measure_stars(image: np.ndarray, roi: Optional[Sequence[int]] = None,
                  cfg: StarsConfig = StarsConfig()) -> StarField:
    """The stars of one frame (8/16-bit or float, grey or colour) within ``roi``."""
    plane, full = _plane(image)
    roi = check_roi(roi, plane.shape)
    ox = oy = 0
    if roi is not None:
        ox, oy, rw, rh = roi
        plane = plane[oy:oy + rh, ox:ox + rw]
    h, w = plane.shape
    if h < 16 or w < 16:
        return _empty(w, h, float(np.median(plane)) if plane.size else 0.0, 0.0)
    sat_level = cfg.saturation or 0.98 * full
    h2, w2 = h // BIN, w // BIN
    binned = _bin(plane, h2, w2)
    level, sky, noise_b = background(binned, cfg.tile // BIN)
    noise_b = max(noise_b, full * 1e-5)
    k1 = cv2.getGaussianKernel(_SMOOTH_KSIZE, _SMOOTH_SIGMA)
    smooth_noise = noise_b * float((k1 ** 2).sum())   # white noise through the 2-D kernel
    above = binned - level
    det = cv2.GaussianBlur(above, (_SMOOTH_KSIZE, _SMOOTH_KSIZE), _SMOOTH_SIGMA)
    mask = (det > cfg.k_sigma * smooth_noise).astype(np.uint8)
    # A faint donut's ring can break into arcs: one dilation joins them into one star.
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    # 16-bit labels are half the work; a dilated region has >= 9 pixels, so they suffice.
    ltype = cv2.CV_16U if mask.size < 9 * 65535 else cv2.CV_32S
    n, _labels, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=ltype)
    # Defocus spreads starlight but keeps it, whether or not the stars are detected.
    light = float(above.sum(dtype=np.float64)) * BIN * BIN
    noise = BIN * noise_b                         # a BIN x BIN mean divides white noise by BIN
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.nonzero(areas >= cfg.min_area)[0] + 1
    if keep.size > _MAX_CANDIDATES:
        keep = keep[np.argsort(-stats[keep, cv2.CC_STAT_AREA])[:_MAX_CANDIDATES]]
    if keep.size == 0:
        return _empty(w, h, sky, noise, light=light)
    bw = stats[keep, cv2.CC_STAT_WIDTH].astype(np.float64)
    bh = stats[keep, cv2.CC_STAT_HEIGHT].astype(np.float64)
    stretched = np.maximum(bw, bh) > 1.6 * np.minimum(bw, bh) + 1
    cx = (cents[keep, 0] + 0.5) * BIN - 0.5
    cy = (cents[keep, 1] + 0.5) * BIN - 0.5
    # Half the region's extent (the dilation added one binned pixel each side) plus margin:
    # what a donut needs. A bright star's faint wings make its region wide too, but 99.8%
    # of an in-focus star's light lies within _FIRST_APERTURE, so every star starts there
    # and only the ones that fill it (donuts, bloated stars) are measured again wider.
    extent = np.clip(0.5 * BIN * (np.maximum(bw, bh) - 2) + 2.0, 5.0, _MAX_APERTURE)
    radius = np.minimum(extent, _FIRST_APERTURE)
    inside = _fits(cx, cy, radius, w, h)
    n_edge = int((~inside).sum())
    sel = inside & ~stretched
    n_blend = int((inside & stretched).sum())
    cx, cy, radius, extent = cx[sel], cy[sel], radius[sel], extent[sel]
    if cx.size == 0:
        return _empty(w, h, sky, noise, edge=n_edge, blend=n_blend, light=light)
    local = level[np.clip((cy / BIN).astype(int), 0, h2 - 1), np.clip((cx / BIN).astype(int), 0, w2 - 1)]
    # One centroid pass suffices within the small first aperture; a grown one (a donut,
    # whose binned centroid is rougher) is refined twice.
    m = _measure_all(plane, cx, cy, radius, local, noise, passes=1)
    # A star cut by the edge is detected with its centroid pulled inward: judge the edge
    # again from the refined centroid.
    cut = ~_fits(m["x"], m["y"], radius, w, h)
    # A star whose half-flux radius fills much of its aperture is truncated: grow the
    # aperture (at least to the detected extent, which fits a donut) and measure again.
    # Two stars in one region (stretched light) would only take in more of their pair:
    # a donut cut by the first aperture looks somewhat stretched (up to about 0.45 here),
    # so only light stretched past TWO_STARS is not grown at first, and once grown anything
    # past MAX_ELLIPTICITY; an aperture that would grow by less than a fifth is as good as
    # it gets.
    settled = m["ellip"] > TWO_STARS
    for _ in range(_GROW_PASSES):
        grow = ~cut & ~settled & (m["hfr"] > 0.45 * radius) & (m["second"] >= m["peak"] / 3.0)
        idx = np.nonzero(grow)[0]
        wider = np.minimum(np.maximum(1.6 * m["hfr"][idx] + 3.0, extent[idx]), _MAX_APERTURE)
        small = wider < 1.2 * radius[idx]
        settled[idx[small]] = True
        idx, wider = idx[~small], wider[~small]
        if not idx.size:
            break
        gx, gy = m["x"][idx], m["y"][idx]
        fits = _fits(gx, gy, wider, w, h)
        cut[idx[~fits]] = True                    # its grown aperture leaves the frame
        idx, wider = idx[fits], wider[fits]
        if not idx.size:
            break
        radius = radius.copy()
        radius[idx] = wider
        again = _measure_all(plane, gx[fits], gy[fits], wider, local[idx], noise)
        for k in _KEYS:
            m[k][idx] = again[k]
        settled[idx] |= again["ellip"] > MAX_ELLIPTICITY
    n_edge += int(cut.sum())
    hot = m["second"] < m["peak"] / 3.0
    merged = ~hot & (m["ellip"] > MAX_ELLIPTICITY)
    # The aperture's summed noise: a "star" not k sigma above it is a noise fragment.
    faint = m["flux"] < cfg.k_sigma * noise * np.sqrt(np.pi) * radius
    ok = ~hot & ~merged & ~faint & ~cut
    n_hot = int(hot.sum())
    n_blend += int((merged & ~cut).sum())
    # Overlapping apertures: each star's half-flux radius would count the other's light.
    x, y, r = m["x"][ok], m["y"][ok], radius[ok]
    d2 = np.square(x[:, None] - x[None, :]) + np.square(y[:, None] - y[None, :])
    np.fill_diagonal(d2, np.inf)
    clash = (d2 < np.square(r[:, None] + r[None, :])).any(axis=1)
    n_blend += int(clash.sum())
    idx = np.nonzero(ok)[0][~clash]
    saturated = m["peak_raw"][idx] >= sat_level
    # Plain floats first: indexing numpy arrays star by star costs more than the stars.
    cols = zip((m["x"][idx] + ox).tolist(), (m["y"][idx] + oy).tolist(), m["flux"][idx].tolist(),
               m["peak"][idx].tolist(), m["hfr"][idx].tolist(), m["fwhm"][idx].tolist(),
               saturated.tolist())
    stars = tuple(Star(*c) for c in cols)
    good = idx[~saturated]
    if good.size:
        hfrs = m["hfr"][good]
        med_hfr = float(np.median(hfrs))
        spread = float(1.4826 * np.median(np.abs(hfrs - med_hfr)))
        med_fwhm = float(np.median(m["fwhm"][good]))
    else:
        med_hfr = med_fwhm = spread = math.nan
    return StarField(width=w, height=h, stars=stars, count=int(good.size),
                     saturated=int(saturated.sum()), hfr=med_hfr, fwhm=med_fwhm,
                     hfr_spread=spread, background=sky, noise=noise, rejected_hot=n_hot,
                     rejected_edge=n_edge, rejected_blend=n_blend, light=light)


def _fits(x, y, r, w: int, h: int) -> np.ndarray:
    return (x - r >= 0) & (x + r <= w - 1) & (y - r >= 0) & (y + r <= h - 1)


_STAMP_HALVES = (int(_FIRST_APERTURE) + 1, 24, int(_MAX_APERTURE) + 1)


def _measure_all(plane, cx, cy, radius, local, noise: float, passes: int = 2) -> dict:
    """``_measure`` in batches of similar aperture: one big donut does not make every
    in-focus star's stamp 97 px wide."""
    group = np.searchsorted(_STAMP_HALVES, np.ceil(radius) + 1)
    groups = np.unique(group)
    if groups.size == 1:              # the usual case: no copying into a merged result
        half = int(math.ceil(radius.max())) + 1
        return _measure(plane, cx, cy, radius, local, noise, half, passes)
    out = {k: np.empty(len(cx)) for k in _KEYS}
    for gi in groups:
        sel = group == gi
        half = int(math.ceil(radius[sel].max())) + 1
        part = _measure(plane, cx[sel], cy[sel], radius[sel], local[sel], noise, half, passes)
        for k in _KEYS:
            out[k][sel] = part[k]
    return out


_KEYS = ("x", "y", "flux", "peak", "second", "peak_raw", "hfr", "fwhm", "ellip")


def _measure(plane, cx, cy, radius, local, noise: float, half: int, passes: int) -> dict:
    """Centroid (refined ``passes`` times), flux, peak, HFR and FWHM of a batch of
    candidates at once."""
    h, w = plane.shape
    n = len(cx)
    cx, cy = cx.astype(np.float32), cy.astype(np.float32)
    r2_ap = np.square(radius.astype(np.float32))[:, None, None]
    size = 2 * half + 1
    # Stamps are windows of the plane; one near the edge is shifted inward (its star's
    # aperture fits the frame, so it still holds the whole aperture).
    y0 = np.clip(np.round(cy).astype(int) - half, 0, max(h - size, 0))
    x0 = np.clip(np.round(cx).astype(int) - half, 0, max(w - size, 0))
    off = np.arange(size)
    yy, xx = y0[:, None] + off, x0[:, None] + off                    # (N, S)
    if h >= size and w >= size:
        stamps = sliding_window_view(plane, (size, size))[y0, x0].astype(np.float32)
    else:
        stamps = plane[np.clip(yy, 0, h - 1)[:, :, None],
                       np.clip(xx, 0, w - 1)[:, None, :]].astype(np.float32)
    d = stamps
    d -= local.astype(np.float32)[:, None, None]
    fy = yy.astype(np.float32)
    fx = xx.astype(np.float32)
    x, y = cx, cy
    # The detection centroid is on the binned grid: refine on full pixels. Only light 2
    # sigma above the sky weighs in, else the noise pulls the centroid to the first guess.
    lit = np.maximum(d - np.float32(2 * noise), 0)
    for _ in range(passes):
        r2 = np.square(fy - y[:, None])[:, :, None] + np.square(fx - x[:, None])[:, None, :]
        wgt = np.where(r2 <= r2_ap, lit, 0)
        tot = np.maximum(wgt.sum(axis=(1, 2)), 1e-12)
        x = (wgt.sum(axis=1) * fx).sum(axis=1) / tot
        y = (wgt.sum(axis=2) * fy).sum(axis=1) / tot
    ex, ey = fx - x[:, None], fy - y[:, None]                         # (N, S) each
    r2 = np.square(ey)[:, :, None] + np.square(ex)[:, None, :]
    dm3 = np.where(r2 <= r2_ap, d, 0)
    dm = dm3.reshape(n, -1)
    flux = dm.sum(axis=1)
    top2 = np.partition(dm, dm.shape[1] - 2, axis=1)[:, -2:]
    peak, second = top2[:, 1], top2[:, 0]
    peak_raw = peak + local                          # the sky is one level per stamp
    hfr = _half_flux_radius(np.sqrt(r2).reshape(n, -1), dm, flux, float(radius.max()))
    # Moments in a Gaussian window of the star's own size (noise far out would dominate
    # moments weighted by r^2; a hard threshold leaves a few pixels that look stretched).
    # x and y offsets are each a stamp axis, so the moments are sums of the marginals.
    s2 = (2 * np.square(np.fmax(hfr, 1.0))).astype(np.float32)   # fmax: NaN -> 1
    wm = dm3 * np.exp(r2 * (-1.0 / s2)[:, None, None])
    ixx = (wm.sum(axis=1) * np.square(ex)).sum(axis=1)
    iyy = (wm.sum(axis=2) * np.square(ey)).sum(axis=1)
    ixy = ((wm * ey[:, :, None]).sum(axis=1) * ex).sum(axis=1)
    ellip = np.hypot(ixx - iyy, 2 * ixy) / np.maximum(np.abs(ixx + iyy), 1e-12)
    above = np.count_nonzero((dm >= (peak / 2)[:, None]) & (dm > 0), axis=1)
    fwhm = 2.0 * np.sqrt(above / math.pi)
    return {"x": x, "y": y, "flux": flux, "peak": peak, "second": second, "peak_raw": peak_raw,
            "hfr": hfr, "fwhm": fwhm, "ellip": ellip}


def _half_flux_radius(r: np.ndarray, dm: np.ndarray, flux: np.ndarray, r_max: float) -> np.ndarray:
    """The radius enclosing half of each row's flux. The light is summed in rings
    ``_RING`` px wide (one ``bincount`` for the whole batch, no per-star sort) and the
    enclosed flux interpolated linearly within the ring where it crosses half."""
    n = len(r)
    nb = int(math.ceil(r_max / _RING)) + 1
    ring = np.minimum((r * (1.0 / _RING)).astype(np.int64), nb - 1)
    ring += (np.arange(n) * nb)[:, None]
    rings = np.bincount(ring.ravel(), weights=dm.ravel(), minlength=n * nb).reshape(n, nb)
    cum = np.cumsum(rings, axis=1)                 # flux inside each ring's outer edge
    halfflux = flux / 2
    k = np.argmax(cum >= halfflux[:, None], axis=1)
    rows = np.arange(n)
    c1 = cum[rows, k]
    c0 = np.where(k > 0, cum[rows, np.maximum(k - 1, 0)], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip((halfflux - c0) / (c1 - c0), 0.0, 1.0)
    hfr = (k + t) * _RING
    return np.where(np.isfinite(hfr) & (flux > 0), hfr, np.nan)


def _empty(w: int, h: int, sky: float, noise: float, *, edge: int = 0, blend: int = 0,
           light: float = 0.0) -> StarField:
    nan = math.nan
    return StarField(width=w, height=h, stars=(), count=0, saturated=0, hfr=nan, fwhm=nan,
                     hfr_spread=nan, background=sky, noise=noise, rejected_hot=0,
                     rejected_edge=edge, rejected_blend=blend, light=light)
