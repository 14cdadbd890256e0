"""Pixel defects with the defect net: per frame, and what persists over a sequence.

Per frame (``DefectDetector.detect``), two stages keep the net within the frame budget:

1. a classic candidate filter, as in cosmetic correction: a pixel is a candidate when
   it differs from its local median by more than ``k_sigma`` local average absolute
   deviations (avgDev) and by at least ``min_abs`` grey levels. Textured regions
   have a large avgDev, so their ordinary edges do not qualify;
2. only 32x32 tiles centred on the strongest candidates go to the defect net, whose
   heat map says where exactly (the peak) and what kind (dead, hot, stuck).

A single frame cannot tell a stuck photosite from a tiny specular highlight.
``DefectSequence`` can: a defect stays on the same sensor pixel while the scene
around it changes; a highlight moves with the scene or goes away. It keeps a
defect only once it has been seen on the same pixel over ``min_scene_changes``
different local neighbourhoods.

Coordinates are always the input image's pixels (x right, y down).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Iterable, Optional

import cv2
import numpy as np

from .errors import InputError
from .inference import TFLiteModel, check_classes, check_input, map_outputs, open_model
from .preprocess import (DEFECT_KINDS, DEFECT_TILE, DEFECT_TOLERANCE_PX,
                         normalize_defect_tiles, to_bgr)

log = logging.getLogger(__name__)

LIVE_MAX_TILES = 8     # defect-net tiles per live frame (~0.25 ms each, single thread)


@dataclass(frozen=True)
class DefectOptions:
    k_sigma: float = 6.0           # candidate: |pixel - local median| > k * local avgDev ...
    min_abs: float = 24.0          # ... and > this many grey levels
    median_ksize: int = 5          # wider than a demosaiced, JPEG'd defect blob (~3 px)
    avgdev_ksize: int = 31         # neighbourhood for the local avgDev
    max_tiles: int = 64            # defect-net tiles per frame (LIVE_MAX_TILES in the loop)
    threshold: float = 0.5         # heat-map peak needed to report a defect
    merge_px: int = 3              # detections closer than this are one defect


def _as_dict(x: int, y: int, kind: str, conf: float) -> dict:
    return {"x": int(x), "y": int(y), "kind": kind, "confidence": round(float(conf), 4)}


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
    def from_config(cls, cfg, model_path=None, live: bool = False) -> "DefectDetector":
        """``live``: the loop's per-frame tile budget (``LIVE_MAX_TILES``) instead of 64."""
        d = cfg.defects
        opts = DefectOptions(k_sigma=d.k_sigma, min_abs=d.min_abs,
                             max_tiles=LIVE_MAX_TILES if live else DefectOptions.max_tiles)
        return cls.from_path(model_path or cfg.models.defects, cfg.models.num_threads, opts)

    # --- stage 1: classic candidates ---------------------------------------------------
    def candidates(self, bgr: np.ndarray, limit: Optional[int] = None) -> np.ndarray:
        """(N, 3) int array of (y, x, strength) for the strongest outliers, best first.

        ``limit``: keep only the strongest ``limit`` (the tile budget cannot use more).
        """
        o = self.opts
        med = cv2.medianBlur(bgr, o.median_ksize)
        b, g, r = cv2.split(cv2.absdiff(bgr, med))
        dev = cv2.max(cv2.max(b, g), r)     # worst channel (numpy's max(axis=2) is 20x slower)
        avgdev = cv2.blur(dev, (o.avgdev_ksize, o.avgdev_ksize))
        # k * (avgDev + 1), at least min_abs, in saturating uint8 (dev never exceeds 255).
        # The outlier itself is inside its own avgDev window; +1 keeps flat areas sane.
        lim = cv2.max(cv2.convertScaleAbs(avgdev, alpha=o.k_sigma, beta=o.k_sigma),
                      int(math.ceil(o.min_abs)))
        pts = cv2.findNonZero(cv2.compare(dev, lim, cv2.CMP_GT))
        if pts is None:
            return np.zeros((0, 3), np.int64)
        pts = pts.reshape(-1, 2).astype(np.int64)      # (N, 1, 2) in OpenCV 4, (N, 2) in 5
        xs, ys = pts[:, 0], pts[:, 1]
        strength = dev[ys, xs].astype(np.float32) / (avgdev[ys, xs].astype(np.float32) + 1.0)
        if limit is not None and len(strength) > limit:
            keep = np.argpartition(-strength, limit)[:limit]
            ys, xs, strength = ys[keep], xs[keep], strength[keep]
        order = np.argsort(-strength, kind="stable")
        return np.stack([ys[order], xs[order], (100 * strength[order]).astype(np.int64)], 1)

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

    # --- stage 2: the net -----------------------------------------------------------------
    def detect(self, image: np.ndarray, priority: Iterable[tuple[int, int]] = ()) -> list[dict]:
        """Defects in one image. ``priority``: (x, y) points that get a tile first
        (a sequence's recurring defects), candidates or not in this frame."""
        bgr = to_bgr(image)
        h, w = bgr.shape[:2]
        if h < DEFECT_TILE or w < DEFECT_TILE:
            raise InputError(f"image {w}x{h} is smaller than a {DEFECT_TILE}-px defect tile")
        # Enough candidates to fill the tile budget even when several share a tile.
        cand = self.candidates(bgr, limit=16 * self.opts.max_tiles)
        pri = np.array([(y, x, 0) for x, y in priority], np.int64).reshape(-1, 3)
        cand = np.concatenate([pri, cand])
        if len(cand) == 0:
            return []
        origins = self._tile_origins(cand, h, w)
        tiles = np.stack([bgr[y:y + DEFECT_TILE, x:x + DEFECT_TILE] for y, x in origins])
        heat = self.model.run(normalize_defect_tiles(tiles))[self.outputs["heatmap"]]
        return self._peaks(heat, origins)

    def _peaks(self, heat: np.ndarray, origins: np.ndarray) -> list[dict]:
        found = []
        k = np.ones((5, 5), np.uint8)
        for hm, (oy, ox) in zip(heat, origins):
            top = hm.max(axis=2)
            # Local maxima of the "any defect" map above threshold (3x3 labels peak in the middle).
            peaks = (top >= self.opts.threshold) & (top >= cv2.dilate(top, k))
            for py, px in zip(*np.nonzero(peaks)):
                kind = int(np.argmax(hm[py, px]))
                found.append((float(top[py, px]), int(ox + px), int(oy + py), DEFECT_KINDS[kind]))
        found.sort(key=lambda f: -f[0])
        out: list[dict] = []
        r2 = self.opts.merge_px ** 2
        for conf, x, y, kind in found:
            if all((x - d["x"]) ** 2 + (y - d["y"]) ** 2 > r2 for d in out):
                out.append(_as_dict(x, y, kind, conf))
        return out


# --- persistence over a sequence -------------------------------------------------------

@dataclass
class _Track:
    x: int
    y: int
    kinds: dict = field(default_factory=dict)   # kind -> summed confidence
    hits: int = 0
    scenes: int = 0                             # local neighbourhoods it was seen over
    last_patch: Optional[np.ndarray] = None


class DefectSequence:
    """Frames of one camera -> the defects that stay put while the scene changes.

    A detection's *local scene* is its grey neighbourhood (``patch`` px square, the
    centre blanked so the defect itself does not count). Each time it is seen again
    over a neighbourhood that differs from the last one by more than
    ``scene_change`` grey levels (mean absolute difference), its scene count goes up.
    A static highlight on a static object never gets past one scene.
    """

    def __init__(self, detector: DefectDetector, min_scene_changes: int = 3,
                 min_hit_fraction: float = 0.5, tolerance_px: int = DEFECT_TOLERANCE_PX,
                 patch: int = 15, scene_change: float = 6.0):
        self.detector = detector
        self.min_scenes = int(min_scene_changes)
        self.min_hit_fraction = float(min_hit_fraction)
        self.tol = int(tolerance_px)
        self.patch = int(patch)
        self.scene_change = float(scene_change)
        self.frames = 0
        self.shape: Optional[tuple[int, int]] = None
        self.tracks: list[_Track] = []

    def _patch(self, padded: np.ndarray, x: int, y: int) -> np.ndarray:
        """The neighbourhood of (x, y) from a frame padded by ``patch // 2`` on each side."""
        p = padded[y:y + self.patch, x:x + self.patch].astype(np.float32)
        c = self.patch // 2
        p[c - 2:c + 3, c - 2:c + 3] = np.nan     # the defect blob is not the scene
        return p

    def update(self, image: np.ndarray) -> list[dict]:
        """Add one frame; returns that frame's own detections."""
        bgr = to_bgr(image)
        shape = bgr.shape[:2]
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            raise InputError(f"frame of {shape[1]}x{shape[0]} in a sequence of "
                             f"{self.shape[1]}x{self.shape[0]} frames (one camera, one size)")
        self.frames += 1
        r = self.patch // 2
        padded = cv2.copyMakeBorder(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), r, r, r, r,
                                    cv2.BORDER_REFLECT)
        # Recurring detections get a tile every frame, even when brighter glints compete
        # for the tile budget or the defect is hard to see against this frame's scene.
        dets = self.detector.detect(bgr, [(t.x, t.y) for t in self.tracks if t.hits >= 2])
        for d in dets:
            tr = self._match(d["x"], d["y"])
            if tr is None:
                tr = _Track(d["x"], d["y"])
                self.tracks.append(tr)
            tr.hits += 1
            tr.kinds[d["kind"]] = tr.kinds.get(d["kind"], 0.0) + d["confidence"]
            patch = self._patch(padded, tr.x, tr.y)
            if tr.last_patch is None or \
                    float(np.nanmean(np.abs(patch - tr.last_patch))) > self.scene_change:
                tr.scenes += 1
                tr.last_patch = patch
        return dets

    def _match(self, x: int, y: int) -> Optional[_Track]:
        best, best_d = None, None
        for tr in self.tracks:
            d = max(abs(tr.x - x), abs(tr.y - y))
            if d <= self.tol and (best_d is None or d < best_d):
                best, best_d = tr, d
        return best

    def persistent(self) -> list[dict]:
        """Defects seen over enough different scenes and in enough of the frames."""
        out = []
        need_hits = max(1, math.ceil(self.min_hit_fraction * self.frames))
        for tr in self.tracks:
            if tr.scenes < self.min_scenes or tr.hits < need_hits:
                continue
            kind = max(tr.kinds, key=tr.kinds.get)
            conf = tr.kinds[kind] / tr.hits * min(1.0, tr.hits / max(1, self.frames))
            out.append(_as_dict(tr.x, tr.y, kind, conf))
        out.sort(key=lambda d: -d["confidence"])
        return out


def scan_sequence(detector: DefectDetector, frames: Iterable[np.ndarray], **kw) -> dict:
    seq = DefectSequence(detector, **kw)
    for f in frames:
        seq.update(f)
    return {"frames": seq.frames, "defects": seq.persistent()}
