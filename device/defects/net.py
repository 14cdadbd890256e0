"""Pixel defects with the defect net: per frame, and what persists over a sequence.

Per frame (``DefectDetector.detect``), two kinds of evidence are combined:

1. classic candidates (``device.defects.candidates.frame_candidates``, the ISP rule): in one
   colour channel a pixel lies beyond the extremes of the 16-pixel ring at distance 2
   around it by a margin that grows with the ring's own spread, and is the strongest
   such pixel in its 3x3. A photosite defect, demosaiced and JPEG'd, is a ~3x3 blob in
   the channel of its Bayer site, so the ring (outside the blob) is its background;
   busy texture has a wide ring and needs a larger excess. Its ``strength`` (excess
   over the margin) is the classic evidence, with how far the pixel stands out of its
   8 immediate neighbours (a whole RGB pixel, the video case, does; a blob does not);
2. the defect net, on 32x32 tiles centred on the strongest candidates (the tile budget
   keeps it within the frame's time), whose heat map gives the probability ``p`` that
   a defect sits there, and its kind.

Each point (a candidate inside a tile, or a heat-map peak off the candidates) gets a
score in log-odds::

    logit(p) + strength_weight * log(strength)          # ring rule (photosite blob)
             + pixel_weight * log(pixel_strength)        # beyond its 8 neighbours (RGB pixel)
             - texture_weight * log(1 + texture)         # mean |Laplacian| around it
             - density_weight * log(1 + density)         # other candidates around it
             + level_weight * level                      # how close to full scale / zero
             + dominance_weight * log(strength / (1 + rival))   # a lone outlier
             - shared_weight * shared                    # other channels move with it

(strengths below 1 count as 1) and is a defect when the score reaches ``min_score``.
Texture is held against a point because busy scenes make outliers of their own (and
fool the net) while defects fall anywhere; so is the number of other ring-rule
candidates in the ``density_px`` square around it, because a defect is a lone outlier
while foliage, gravel and JPEG-ringing edges throw up dozens together (on the tuning
photos it took the recall at 3 false/MP from 0.61 to 0.71). Three more terms (issue 15) read
the photosite signature:

* ``level``: how close the pixel is, in its strongest channel, to full scale (when it is
  above its ring) or to zero (below): a hot photosite is set at 235-255 and a dead one at
  0-11 whatever the scene (demosaicing and JPEG pull them in, but not to mid levels),
  while texture outliers fall at any level;
* ``rival``: the strongest other ring-rule candidate in the ``density_px`` square, beyond
  2 px (the point's own blob): a defect is the strongest outlier of its neighbourhood by a
  margin, a texture point has rivals as strong as itself;
* ``shared``: over the 3x3 blob, the deviation from the ring's median that the other two
  colour channels share with the strongest one, as a share of it (0..2). Demosaiced, one
  photosite moves one channel (0); JPEG's half-resolution chroma turns most of the spike
  into luma, so the others follow, but less than they do for the grey glints, specks and
  ringing edges that score highest among the scene's points (medians 1.70 vs 1.86 near
  the bar on the tuning photos).

The three terms were chosen together (``bench/tune_defects.py --signature``): on the
tuning frames, recall at <= 2 false/MP rose from 0.671 to 0.705, mostly from ``shared``.

Because the net enters as log-odds, a
better-trained net plugs in as it is: the sharper its probabilities, the more it
decides. The weights and the bar were chosen on scikit-image photos, crops of the
training photographs (``train_photos``) and microscope-like versions of them
(``bench/tune_defects.py``), never the benchmark's (bench/bench_defects.py): the bar is
the one for about 1 false defect per megapixel there in single JPEG frames.

A single frame cannot tell a stuck photosite from a tiny specular highlight; over a
sequence, the one persistence rule (``device.defects.persistence.DefectMap``) can. Its
detections feed that map with the lower per-frame bar ``SEQUENCE_MIN_SCORE``.

Coordinates are always the input image's pixels (x right, y down).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Iterable, Optional

import cv2
import numpy as np

from device.defects.candidates import frame_candidates
from device.errors import InputError
from device.scoring.inference import TFLiteModel, check_classes, check_input, map_outputs, open_model
from device.common.preprocess import (DEFECT_KINDS, DEFECT_TILE,
                         normalize_defect_tiles, to_bgr)

log = logging.getLogger(__name__)

LIVE_MAX_TILES = 8     # defect-net tiles per live frame (~0.25 ms each, single thread)
SEQUENCE_MIN_SCORE = -3.0  # per-frame bar inside a sequence: persistence does the rest
_P_EPS = 1e-4              # keeps logit(p) finite (|logit| <= 9.2)
_NEAR = 2                  # px: a heat-map peak this close to a candidate is its evidence


@dataclass(frozen=True)
class DefectOptions:
    ring_threshold: float = 8.0    # candidate: beyond the ring's extremes by this many levels ...
    spread_gain: float = 0.3       # ... plus this share of the ring's range (texture)
    max_tiles: int = 256           # defect-net tiles per frame (LIVE_MAX_TILES in the loop)
    min_score: float = -3.0        # score a single frame's defect needs (see module doc)
    strength_weight: float = 1.0   # weight of log(classic strength) in the score
    pixel_weight: float = 2.0      # weight of log(single-pixel strength) (whole-pixel defects)
    texture_weight: float = 3.0    # weight of log(1 + local texture) held against it
    texture_px: int = 15           # window of the local texture (mean |Laplacian| of grey)
    density_weight: float = 3.0    # weight of log(1 + other candidates nearby) held against it
    density_px: int = 31           # window in which the other candidates are counted
    level_weight: float = 2.0      # weight of the level term (full scale / zero, 0..1)
    dominance_weight: float = 0.5  # weight of log(strength / (1 + strongest rival nearby))
    shared_weight: float = 2.0     # weight of the deviation share the other channels move with
    net_peak: float = 0.5          # heat-map peaks off any candidate must reach this p
    merge_px: int = 3              # detections closer than this are one defect


# A sequence's per-frame score keeps the weights its persistence figures (pan 0.980,
# sweeps) were measured with: the single-frame weights above were chosen for one frame's
# false detections, and the persistence map already removes what does not recur.
SEQUENCE_OPTIONS = DefectOptions(min_score=SEQUENCE_MIN_SCORE, strength_weight=0.5, pixel_weight=1.0,
                                 texture_weight=2.0, density_weight=0.0, level_weight=0.0,
                                 dominance_weight=0.0, shared_weight=0.0)


@dataclass(frozen=True)
class Evidence:
    """Every point the detector looked at in one image, before any weighting: what the
    net said (``logit_p``) and the classic terms of the score (see the module doc)."""
    xs: np.ndarray
    ys: np.ndarray
    kinds: tuple
    logit_p: np.ndarray
    strength: np.ndarray    # ring-rule strength (1 where the classic rule saw nothing)
    pixel: np.ndarray       # excess over the 8 immediate neighbours
    texture: np.ndarray     # mean |Laplacian| around the point
    density: np.ndarray     # other ring-rule candidates in the density_px square around it
    level: np.ndarray       # 0..1: full scale (above its ring) or zero (below), strongest channel
    rival: np.ndarray       # strongest other candidate in that square, beyond 2 px (0: none)
    shared: np.ndarray      # share of the 3x3 deviation the other channels move with

    @classmethod
    def empty(cls) -> "Evidence":
        z = np.zeros(0)
        return cls(z.astype(np.int64), z.astype(np.int64), (), z, z, z, z, z, z, z, z)


def _as_dict(x: int, y: int, kind: str, conf: float) -> dict:
    return {"x": int(x), "y": int(y), "kind": kind, "confidence": round(float(conf), 4)}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), _P_EPS, 1.0 - _P_EPS)
    return np.log(p / (1.0 - p))


def _texture_at(bgr: np.ndarray, ys: np.ndarray, xs: np.ndarray, size: int) -> np.ndarray:
    """Mean |Laplacian| of the grey image in a ``size`` square around each (y, x).

    Only the points asked for are measured, from their own patches: a full-frame filter
    would cost as much as the rest of the detector on a 12 MP frame."""
    if len(ys) == 0:
        return np.zeros(0, np.float64)
    r = size // 2 + 1                                  # +1: the Laplacian's own border
    grey = cv2.copyMakeBorder(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), r, r, r, r,
                              cv2.BORDER_REFLECT_101)
    off = np.arange(-r, r + 1)
    patches = grey[(ys + r)[:, None, None] + off[None, :, None],
                   (xs + r)[:, None, None] + off[None, None, :]].astype(np.int16)
    lap = (patches[:, :-2, 1:-1] + patches[:, 2:, 1:-1] + patches[:, 1:-1, :-2]
           + patches[:, 1:-1, 2:] - 4 * patches[:, 1:-1, 1:-1])
    return np.abs(lap).mean(axis=(1, 2), dtype=np.float64)


_OWN_BLOB = 2   # px (Chebyshev): a rival this close is the point's own demosaiced blob


def _density_at(every: tuple, ys: np.ndarray, xs: np.ndarray, size: int,
                rivals: bool = False):
    """How many of the candidates ``every`` = (ys, xs[, strength]) lie in the ``size``
    square around each (y, x), the point itself not counted. The candidates are sorted by
    row once and each point reads only its own band of rows: no full-frame image (48 MB
    at 12 MP). ``rivals``: also return the strongest of them farther than ``_OWN_BLOB``
    px from the point (0 where there is none; needs the strengths in ``every``)."""
    cy, cx = np.asarray(every[0], np.int64), np.asarray(every[1], np.int64)
    cs = np.asarray(every[2], np.float64) if rivals else np.zeros(len(cy))
    out = np.zeros(len(ys), np.float64)
    best = np.zeros(len(ys), np.float64)
    if len(ys) and len(cy):
        r = size // 2
        order = np.argsort(cy, kind="stable")
        cy, cx, cs = cy[order], cx[order], cs[order]
        lo = np.searchsorted(cy, ys - r, "left")
        hi = np.searchsorted(cy, ys + r, "right")
        for i in range(len(ys)):
            band_y, band_x = cy[lo[i]:hi[i]], cx[lo[i]:hi[i]]
            near = np.abs(band_x - xs[i]) <= r
            self_hit = np.count_nonzero(near & (band_x == xs[i]) & (band_y == ys[i]))
            out[i] = np.count_nonzero(near) - self_hit
            if rivals:
                far = near & (np.maximum(np.abs(band_x - xs[i]), np.abs(band_y - ys[i])) > _OWN_BLOB)
                if far.any():
                    best[i] = cs[lo[i]:hi[i]][far].max()
    return (out, best) if rivals else out


# The 16 pixels at distance 2 (the ring rule's ring) and the 3x3 core, as (dy, dx).
_RING_OFFSETS = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if max(abs(dy), abs(dx)) == 2]
_CORE_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def _signature(bgr: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(level, shared) of each point: the photosite signature terms of the score.

    Against the per-channel median of the ring at distance 2, the strongest channel is the
    one the centre pixel deviates most in. ``level``: that channel's value as a share of
    full scale when the pixel is above the ring, of zero when below. ``shared``: the
    other channels' deviations summed over the 3x3 core, where they have the same sign
    as the strongest channel's, over the strongest channel's (0 for a lone channel)."""
    h, w = bgr.shape[:2]
    yy = np.clip(ys, 2, h - 3)
    xx = np.clip(xs, 2, w - 3)
    ring = np.stack([bgr[yy + dy, xx + dx] for dy, dx in _RING_OFFSETS], 1).astype(np.float32)
    core = np.stack([bgr[yy + dy, xx + dx] for dy, dx in _CORE_OFFSETS], 1).astype(np.float32)
    med = np.median(ring, axis=1)                          # (N, 3)
    centre = bgr[yy, xx].astype(np.float32) - med
    own = np.abs(centre).argmax(axis=1)
    idx = np.arange(len(yy))
    dev = (core - med[:, None, :]).sum(axis=1)             # (N, 3) summed over the blob
    mine = dev[idx, own]
    with_it = dev * np.sign(mine)[:, None]
    with_it[idx, own] = 0.0
    shared = np.clip(with_it, 0.0, None).sum(axis=1) / np.maximum(np.abs(mine), 1.0)
    value = bgr[yy, xx, own].astype(np.float64) / 255.0
    level = np.where(centre[idx, own] > 0, value, 1.0 - value)
    return level, shared.astype(np.float64)


def _pixel_strength(bgr: np.ndarray, ys: np.ndarray, xs: np.ndarray, threshold: float,
                    spread_gain: float) -> np.ndarray:
    """The ring rule one step closer in: excess of (y, x) beyond the extremes of its 8
    immediate neighbours, in units of ``threshold + spread_gain * their range``, the
    strongest channel. A whole-pixel defect (the video case) is far out; a demosaiced
    photosite lifts its neighbours too and scores little; texture scores little."""
    h, w = bgr.shape[:2]
    yy = np.clip(ys, 1, h - 2)
    xx = np.clip(xs, 1, w - 2)
    centre = bgr[yy, xx].astype(np.float32)                       # (N, 3)
    ring = np.stack([bgr[yy + dy, xx + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                     if dy or dx], 1).astype(np.float32)           # (N, 8, 3)
    hi, lo = ring.max(1), ring.min(1)
    excess = np.maximum(np.maximum(centre - hi, lo - centre), 0.0)
    return (excess / (threshold + spread_gain * (hi - lo))).max(1)


class DefectDetector:
    """Built once; ``detect(image)`` -> ``[{"x", "y", "kind", "confidence"}, ...]``."""

    def __init__(self, model: TFLiteModel, meta: Optional[dict] = None,
                 options: DefectOptions = DefectOptions()):
        check_input(model, (DEFECT_TILE, DEFECT_TILE, 3), "defect")
        self.outputs = map_outputs(
            model, {"heatmap": (DEFECT_TILE, DEFECT_TILE, len(DEFECT_KINDS))}, meta)
        check_classes(model, meta, DEFECT_KINDS, "defect kinds")
        self.model = model
        self.meta = meta or {}
        self.opts = options

    @classmethod
    def from_path(cls, path=None, num_threads: Optional[int] = None,
                  options: DefectOptions = DefectOptions()) -> "DefectDetector":
        return cls(*open_model("defects", path, num_threads), options)

    @classmethod
    def from_config(cls, cfg, model_path=None, live: bool = False,
                    sequence: bool = False) -> "DefectDetector":
        """``sequence``: its detections feed a map that confirms defects by persistence (the
        video report), so each frame takes the sequence's lower per-frame bar. ``live``:
        the live map, which is also a sequence, within the loop's tile budget
        (``LIVE_MAX_TILES`` instead of 256)."""
        opts = DefectOptions()
        if live or sequence:
            opts = replace(SEQUENCE_OPTIONS, max_tiles=LIVE_MAX_TILES if live else opts.max_tiles)
        return cls.from_path(model_path or cfg.models.defects, cfg.models.num_threads, opts)

    # --- stage 1: classic candidates ---------------------------------------------------
    def candidates(self, bgr: np.ndarray, limit: Optional[int] = None,
                   found: Optional[tuple] = None) -> np.ndarray:
        """(N, 3) int array of (y, x, 100 * strength) for the ring-rule outliers, best first.

        ``limit``: keep only the strongest ``limit`` (the tile budget cannot use more).
        ``found``: ``frame_candidates``' (ys, xs, strength) when already computed.
        """
        if found is None:
            ys, xs, _, strength, _ = frame_candidates(bgr, self.opts.ring_threshold, self.opts.spread_gain)
        else:
            ys, xs, strength = found
        if limit is not None and len(strength) > limit:
            keep = np.argpartition(-strength, limit)[:limit]
            ys, xs, strength = ys[keep], xs[keep], strength[keep]
        order = np.argsort(-strength, kind="stable")
        return np.stack([ys[order], xs[order], np.round(100 * strength[order])], 1).astype(np.int64)

    def score(self, ev: Evidence) -> np.ndarray:
        """The log-odds score of every point of ``ev`` with this detector's weights.

        Busy texture makes outliers of its own (and fools the net) while defects fall
        anywhere, so the same evidence counts for less where the scene is busy."""
        o = self.opts
        log_strength = np.log(np.maximum(ev.strength, 1.0))
        return (ev.logit_p + o.strength_weight * log_strength
                + o.pixel_weight * np.log(np.maximum(ev.pixel, 1.0))
                - o.texture_weight * np.log1p(ev.texture)
                - o.density_weight * np.log1p(ev.density)
                + o.level_weight * ev.level
                + o.dominance_weight * (log_strength - np.log1p(ev.rival))
                - o.shared_weight * ev.shared)

    def _tile_origins(self, cand: np.ndarray, h: int, w: int) -> np.ndarray:
        """Tiles centred on candidates, greedily, so one tile covers its neighbours."""
        t = DEFECT_TILE
        half = t // 2
        margin = 4     # a candidate this close to a tile edge gets its own tile
        origins: list[tuple[int, int]] = []
        for y, x, _ in cand:
            covered = any(oy + margin <= y < oy + t - margin and ox + margin <= x < ox + t - margin
                          for oy, ox in origins)
            if covered:
                continue
            origins.append((int(min(max(y - half, 0), h - t)), int(min(max(x - half, 0), w - t))))
            if len(origins) >= self.opts.max_tiles:
                break
        return np.array(origins, np.int64).reshape(-1, 2)

    # --- stage 2: the net, and the combined score ----------------------------------------
    def detect(self, image: np.ndarray, priority: Iterable[tuple[int, int]] = (),
               min_score: Optional[float] = None) -> list[dict]:
        """Defects in one image. ``priority``: (x, y) points that get a tile first
        (a sequence's recurring defects), candidates or not in this frame.
        ``min_score``: the log-odds bar (default ``options.min_score``)."""
        ev = self.evidence(image, priority)
        bar = self.opts.min_score if min_score is None else float(min_score)
        return [_as_dict(ev.xs[i], ev.ys[i], ev.kinds[i], 1.0 / (1.0 + math.exp(-sc)))
                for i, sc in self.decide(ev, self.score(ev), bar)]

    def evidence(self, image: np.ndarray, priority: Iterable[tuple[int, int]] = ()) -> Evidence:
        """Classic candidates, the net on tiles around them, and each point's evidence."""
        bgr = to_bgr(image)
        h, w = bgr.shape[:2]
        if h < DEFECT_TILE or w < DEFECT_TILE:
            raise InputError(f"image {w}x{h} is smaller than a {DEFECT_TILE}-px defect tile")
        ys, xs, _, strength, _ = frame_candidates(bgr, self.opts.ring_threshold, self.opts.spread_gain)
        # Enough candidates to fill the tile budget even when several share a tile.
        cand = self.candidates(bgr, limit=16 * self.opts.max_tiles, found=(ys, xs, strength))
        pri = np.array([(y, x, 0) for x, y in priority], np.int64).reshape(-1, 3)
        if len(cand) + len(pri) == 0:
            return Evidence.empty()
        origins = self._tile_origins(np.concatenate([pri, cand]), h, w)
        tiles = np.stack([bgr[y:y + DEFECT_TILE, x:x + DEFECT_TILE] for y, x in origins])
        heat = self.model.run(normalize_defect_tiles(tiles))[self.outputs["heatmap"]]
        return self._points(bgr, heat, origins, cand, (ys, xs, strength))

    def _points(self, bgr: np.ndarray, heat: np.ndarray, origins: np.ndarray,
                cand: np.ndarray, every: tuple = (np.zeros(0, np.int64),) * 3) -> Evidence:
        """The evidence at every candidate inside a tile and every heat-map peak off the
        candidates."""
        o = self.opts
        ps, strengths, xs, ys, kinds = [], [], [], [], []
        seen = np.zeros(len(cand), bool)
        k5 = np.ones((5, 5), np.uint8)
        t = DEFECT_TILE
        for hm, (oy, ox) in zip(heat, origins):
            # Candidates off the tile's border (the net sees their surroundings): the
            # net's belief is its strongest within ``_NEAR`` px (the demosaiced blob).
            cy, cx = cand[:, 0] - oy, cand[:, 1] - ox
            inside = ~seen & (cy >= _NEAR) & (cy < t - _NEAR) & (cx >= _NEAR) & (cx < t - _NEAR)
            for i in np.nonzero(inside)[0]:
                win = hm[cy[i] - _NEAR:cy[i] + _NEAR + 1, cx[i] - _NEAR:cx[i] + _NEAR + 1]
                j = np.unravel_index(int(np.argmax(win)), win.shape)
                ps.append(float(win[j]))
                strengths.append(cand[i, 2] / 100.0)
                ys.append(int(cand[i, 0]))
                xs.append(int(cand[i, 1]))
                kinds.append(DEFECT_KINDS[j[2]])
            seen |= inside
            # What the net sees where the classic rule saw nothing (strength 1: log 0).
            top = hm.max(axis=2)
            peaks = (top >= o.net_peak) & (top >= cv2.dilate(top, k5))
            for py, px in zip(*np.nonzero(peaks)):
                y, x = oy + py, ox + px
                if len(cand) and np.min(np.maximum(np.abs(cand[:, 0] - y), np.abs(cand[:, 1] - x))) <= _NEAR:
                    continue
                ps.append(float(top[py, px]))
                strengths.append(1.0)
                ys.append(int(y))
                xs.append(int(x))
                kinds.append(DEFECT_KINDS[int(np.argmax(hm[py, px]))])
        if not ps:
            return Evidence.empty()
        ya, xa = np.array(ys, np.int64), np.array(xs, np.int64)
        o = self.opts
        zero = np.zeros(len(ya), np.float64)
        # The sequence/live options weigh density and rivals 0: skip their per-point loop.
        if o.dominance_weight and len(every) > 2:
            density, rival = _density_at(every, ya, xa, o.density_px, rivals=True)
        elif o.density_weight or o.dominance_weight:
            density, rival = _density_at(every[:2], ya, xa, o.density_px), zero
        else:
            density, rival = zero, zero
        level, shared = _signature(bgr, ya, xa) if (o.level_weight or o.shared_weight) else (zero, zero)
        return Evidence(xa, ya, tuple(kinds), _logit(ps), np.asarray(strengths, np.float64),
                        _pixel_strength(bgr, ya, xa, o.ring_threshold, o.spread_gain),
                        _texture_at(bgr, ya, xa, o.texture_px), density, level, rival, shared)

    def decide(self, ev: Evidence, score: np.ndarray, bar: float = -math.inf) -> list[tuple[int, float]]:
        """(index, score) of the points at or above ``bar`` that survive merging, best
        first: a point closer than ``merge_px`` to a better one is the same defect. A
        point is only ever suppressed by a better one, so applying a bar afterwards gives
        what applying it first does."""
        r2 = self.opts.merge_px ** 2
        r = max(1, self.opts.merge_px)      # cell size: a suppressor is in a neighbouring cell
        cells: dict[tuple[int, int], list[tuple[int, int]]] = {}
        out: list[tuple[int, float]] = []
        for i in np.argsort(-score, kind="stable").tolist():
            if score[i] < bar:
                break
            x, y = int(ev.xs[i]), int(ev.ys[i])
            cx, cy = x // r, y // r
            near = (p for dx in (-1, 0, 1) for dy in (-1, 0, 1) for p in cells.get((cx + dx, cy + dy), ()))
            if all((x - a) ** 2 + (y - b) ** 2 > r2 for a, b in near):
                out.append((i, float(score[i])))
                cells.setdefault((cx, cy), []).append((x, y))
        return out
