"""The one persistence rule for pixel defects: the live map, ``defects --sequence`` and
the video report all confirm defects here (``DefectMap``).

A defect stays on one photosite while the scene around it changes; texture, a glint or a
bright point of the scene changes with it. Every analysed frame gives candidates
(``device.defects.candidates``, or the defect net's detections) for (pixel, channel,
sign). A candidate is *confirmed* when

* it was a candidate in at least ``MIN_SEEN_SHARE`` of the analysed frames since it was
  first seen (its deviation persists: a glint that is a spike only while in focus is not), and
* its own neighbourhood changed ``min_hits - 1`` times between sightings (the first
  sighting is the first hit), whatever changed it: a pan, a focus change, an exposure or
  lighting change, in a frame where the scene as a whole changed (at least
  ``SCENE_CHANGE_SHARE`` of its neighbourhoods, on a grid, passed the same local test
  since the last frame that did: see ``DefectMap._scene_moved``).

The neighbourhood is measured locally, not frame-wide: eight 5x5 blocks around the
candidate (offsets of 5 px, so the demosaiced defect blob is outside them), each with its
mean grey level and its mean |Laplacian|. It changed when at least ``MIN_CHANGED_BLOCKS``
blocks moved their mean by ``max(scene_change, MEAN_Z`` noise sigmas of a block mean)
or their texture by a factor ``exp(TEXTURE_CHANGE)`` (the texture has a floor of
``TEXTURE_FLOOR`` noise sigmas, so re-rolled noise on a flat wall is no change). The noise
sigma is estimated in every frame (Immerkaer's operator, median-based so texture barely
moves it), so high-gain noise on a still scene is never taken for the scene changing, and a
focus sweep on a tripod is: the scene blurs and sharpens around a defect that stays a
one-photosite spike.

A candidate that persists while its neighbourhood does not change cannot be told from a
bright point of a still scene: it is reported as *undecided* (``undecided()``, with the
reason), never silently dropped; the lens-capped dark-frame check settles it.

A new frame size (camera reconfigured) starts a new map everywhere, with a log line:
positions no longer mean the same photosite.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Optional

import cv2
import numpy as np

from device.defects.net import DefectDetector
from device.defects.candidates import CODES, _kind, band_rows, frame_candidates
from device.common.preprocess import to_bgr

log = logging.getLogger(__name__)

# The live map reports at most this many defects, strongest first: far more than a usable
# sensor has, and it keeps the map, its file and the overlay's work bounded on a scene
# that fools the persistence rule.
MAX_DEFECTS = 1000
# Candidates with some evidence kept in the saved map (to resume after a restart): the
# file and the memory a save takes stay the same size on a long run.
MAX_SAVED_TRACKS = 5000
MAP_VERSION = 2

# The neighbourhood (see the module doc). The values were chosen on scikit-image's
# astronaut, still, with noise sigma 3-8 with and without JPEG q90 (0 confirmed in 60
# frames), and on the two focus sweeps that may be used for tuning (pi_board_macro,
# usb_dongle_macro); MIN_SEEN_SHARE is 0.4, not 0.5, because the pan benchmark counts a
# defect visible in half of the frames and a visible defect is not a candidate in all.
BLOCK = 5
BLOCK_OFFSET = 5
OFFSETS = np.array([(dy, dx) for dy in (-BLOCK_OFFSET, 0, BLOCK_OFFSET)
                    for dx in (-BLOCK_OFFSET, 0, BLOCK_OFFSET) if dy or dx], np.int64)
N_BLOCKS = len(OFFSETS)
MEAN_Z = 5.0              # noise sigmas of the change of a block mean
TEXTURE_CHANGE = 0.3      # |log| of the ratio of a block's texture (x1.35)
TEXTURE_FLOOR = 6.0       # noise sigmas added to a block's mean |Laplacian|
MIN_CHANGED_BLOCKS = 3
MIN_SEEN_SHARE = 0.4      # candidate in at least this share of the frames since first seen
SCENE_CHANGE_SHARE = 0.10  # of the scene's neighbourhoods, for any change to count (see _scene_moved)
GRID_STEP = 7             # px between the neighbourhoods of that scene test ...
GRID_POINTS = 80_000      # ... and at most this many (1080p: 41,000; 2048x1536: 64,000)
# Grey levels: the scene test's floor of a block-mean change. At 1.0 a still JPEG q90
# scene with noise sigma 3 passed it (13% of neighbourhoods), at 1.25 and above none did.
SCENE_TEST_FLOOR = 2.0
# Immerkaer's noise operator: the Laplacian difference that cancels smooth content; its
# response to white noise has a standard deviation of 6 sigma.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)

# Track keys pack (y, x, code) into one int64 so the tracks live in a few flat arrays,
# sorted by key: a frame's candidates are matched with one searchsorted instead of a
# Python loop.
_XBITS = 20          # x and y below 2**20: far beyond any sensor


def _pack(ys, xs, codes) -> np.ndarray:
    return ((np.asarray(ys, np.int64) << _XBITS) | np.asarray(xs, np.int64)) << 3 | np.asarray(codes, np.int64)


def _unpack(keys: np.ndarray):
    return keys >> (3 + _XBITS), (keys >> 3) & ((1 << _XBITS) - 1), keys & 7


def noise_sigma(grey: np.ndarray) -> float:
    """Sensor-noise sigma of one grey frame (Immerkaer), from the median so that texture
    and edges, a minority of pixels, barely move it."""
    r = cv2.filter2D(grey, cv2.CV_32F, _NOISE_KERNEL)[1:-1:3, 1:-1:3]
    return _sigma_of(r)


def _sigma_of(responses: np.ndarray) -> float:
    # np.median's value by np.partition: np.median imports numpy.ma (1.2 MB of RSS on a
    # Pi Zero 2 W, issue 20) on its first call; the live map is its only caller in a run.
    a = np.abs(responses).ravel()
    if a.size == 0:
        return float("nan")
    k = a.size // 2
    if a.size % 2:
        mid = np.partition(a, k)[k]
    else:
        lo_hi = np.partition(a, (k - 1, k))
        mid = (lo_hi[k - 1] + lo_hi[k]) / 2
    return 1.4826 * float(mid) / 6.0


# Rows of grey each band needs beyond its own: 2 for the 5x5 block, 1 for the Laplacian.
HOOD_HALO = 3


def grid_points(shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) every ``GRID_STEP`` px (coarser on big frames, so at most ``GRID_POINTS``
    points), off the border: the neighbourhoods that stand for the scene as a whole."""
    h, w = shape
    m = BLOCK_OFFSET + BLOCK
    step = max(GRID_STEP, math.ceil(math.sqrt(h * w / GRID_POINTS)))
    ys, xs = np.mgrid[m:max(m + 1, h - m):step, m:max(m + 1, w - m):step]
    return ys.ravel(), xs.ravel()


def neighbourhoods(image: np.ndarray, points, rows: int = 0) -> tuple[float, list]:
    """One frame's noise sigma, and for each ``(ys, xs)`` of ``points`` an (N, 2 * N_BLOCKS)
    float32 array: the eight blocks' means, then their textures (see the module doc).

    Measured in horizontal bands of ``rows`` rows (0: ``band_rows``), ``HOOD_HALO`` rows
    of overlap each, and sampled where the points fall, so no frame-sized float image
    exists (five of them did, 6 MB at 640x480); the values are the whole frame's, for any
    band height (``tests/device/defects/test_bands.py``)."""
    bgr = to_bgr(image)
    h, w = bgr.shape[:2]
    step = rows if rows > 0 else band_rows(w)
    yy, xx, sizes = [], [], []
    off = OFFSETS.astype(np.int32)       # positions fit (see _XBITS): half the index memory
    for ys, xs in points:
        yy.append(np.clip(np.asarray(ys, np.int32)[:, None] + off[:, 0], 0, h - 1).ravel())
        xx.append(np.clip(np.asarray(xs, np.int32)[:, None] + off[:, 1], 0, w - 1).ravel())
        sizes.append(len(yy[-1]))
    yy, xx = np.concatenate(yy), np.concatenate(xx)
    band = yy // step
    mean = np.empty(len(yy), np.float32)
    texture = np.empty(len(yy), np.float32)
    noise = []
    for k, y0 in enumerate(range(0, h, step)):
        y1 = min(h, y0 + step)
        top = max(0, y0 - HOOD_HALO)
        grey = cv2.cvtColor(bgr[top:min(h, y1 + HOOD_HALO)], cv2.COLOR_BGR2GRAY).astype(np.float32)
        # noise_sigma's rows 1, 4, 7, ... (below the last row), columns likewise; copied,
        # so the band's filter response is freed now (a view kept every band's alive
        # until the end: a frame-sized float image, 1.2 MB at 640x480).
        first = y0 + (1 - y0) % 3
        noise.append(cv2.filter2D(grey, cv2.CV_32F, _NOISE_KERNEL)
                     [first - top:min(y1, h - 1) - top:3, 1:-1:3].copy())
        sel = np.flatnonzero(band == k)
        if not len(sel):
            continue
        ry, rx = yy[sel] - top, xx[sel]
        mean[sel] = cv2.blur(grey, (BLOCK, BLOCK))[ry, rx]
        texture[sel] = cv2.blur(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), (BLOCK, BLOCK))[ry, rx]
    sigma = _sigma_of(np.concatenate([n.ravel() for n in noise]))
    out, at = [], 0
    for n in sizes:
        out.append(np.concatenate([mean[at:at + n].reshape(-1, N_BLOCKS),
                                   texture[at:at + n].reshape(-1, N_BLOCKS)], axis=1))
        at += n
    return sigma, out


def neighbourhood_changed(ref: np.ndarray, cur: np.ndarray, sigma, floor: float) -> np.ndarray:
    """Per row: did the neighbourhood ``cur`` change from ``ref`` (``neighbourhoods``
    rows) beyond what noise of ``sigma`` (per row, or one for all) does?"""
    sigma = np.broadcast_to(np.asarray(sigma, np.float32), (len(cur),))[:, None]
    mean_step = np.maximum(floor, MEAN_Z * math.sqrt(2.0) / BLOCK * sigma)
    floor_t = TEXTURE_FLOOR * sigma + 1.0
    dm = np.abs(cur[:, :N_BLOCKS] - ref[:, :N_BLOCKS]) >= mean_step
    dt = np.abs(np.log((cur[:, N_BLOCKS:] + floor_t) / (ref[:, N_BLOCKS:] + floor_t))) >= TEXTURE_CHANGE
    return (dm | dt).sum(axis=1) >= MIN_CHANGED_BLOCKS


class DefectMap:
    """Accumulates candidates over frames; ``confirmed()`` is the persistent map,
    ``undecided()`` what persisted over a neighbourhood that never changed.

    Memory is bounded: unconfirmed candidates not seen for ``forget_after`` analysed frames
    are forgotten every 50 frames, and past ``max_tracked`` tracks the half with the least
    evidence goes (confirmed defects have the most hits, so they stay). ``confirmed()``
    reports at most ``MAX_DEFECTS`` and a save keeps at most ``MAX_SAVED_TRACKS`` candidates.
    """

    def __init__(self, *, threshold: float = 16.0, spread_gain: float = 0.3, min_hits: int = 5,
                 scene_change: float = 1.0, forget_after: int = 300, max_tracked: int = 50_000):
        self.threshold, self.spread_gain = threshold, spread_gain
        self.min_hits, self.scene_change = int(min_hits), float(scene_change)
        self.forget_after, self.max_tracked = int(forget_after), int(max_tracked)
        self.frames = 0
        self.resets = 0
        self.shape: Optional[tuple[int, int]] = None
        # (x, y) of defects a person marked as known (the web panel's "mark as known"):
        # replaced whole, never mutated, so a report on another thread reads one set.
        self.known: frozenset = frozenset()
        self._clear()

    def _clear(self) -> None:
        # One entry per (y, x, code), sorted by key: hits (sightings over a changed
        # neighbourhood), sightings, first and last frame seen, the sum of the pixel's
        # values over sightings, and the neighbourhood (with its noise sigma) at the last
        # hit; a NaN neighbourhood (a resumed map) is taken at the next sighting.
        self._key = np.zeros(0, np.int64)
        self._hits = np.zeros(0, np.int32)
        self._seen = np.zeros(0, np.int32)
        self._first = np.zeros(0, np.int64)
        self._last = np.zeros(0, np.int64)
        self._vsum = np.zeros(0, np.float64)
        self._ref = np.zeros((0, 2 * N_BLOCKS), np.float32)
        self._ref_sigma = np.zeros(0, np.float32)
        # The whole scene's neighbourhoods at the last frame that changed (see _scene_moved).
        self._scene: Optional[np.ndarray] = None
        self._scene_sigma = 0.0

    _COLUMNS = ("_key", "_hits", "_seen", "_first", "_last", "_vsum", "_ref", "_ref_sigma")

    def _take(self, sel) -> None:
        for name in self._COLUMNS:
            setattr(self, name, getattr(self, name)[sel])

    @classmethod
    def from_config(cls, d) -> "DefectMap":
        return cls(threshold=d.threshold, spread_gain=d.spread_gain, min_hits=d.min_hits,
                   scene_change=d.scene_change)

    def add(self, image: np.ndarray) -> int:
        """Analyse one frame; returns how many candidates it had."""
        ys, xs, codes, _, values = frame_candidates(image, self.threshold, self.spread_gain)
        return self.add_candidates(image, ys, xs, codes, values)

    def add_candidates(self, image, ys, xs, codes, values) -> int:
        shape = tuple(image.shape[:2])
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            log.info("defect map: frame size changed from %dx%d to %dx%d; starting a new map",
                     self.shape[1], self.shape[0], shape[1], shape[0])
            self.reset()
            self.resets += 1
            self.shape = shape
        self.frames += 1
        f = self.frames
        n_cand = len(ys)
        # A key seen twice in one frame (a detector may repeat itself) counts once.
        keys, first = np.unique(_pack(ys, xs, codes), return_index=True)
        ys, xs = np.asarray(ys, np.int64)[first], np.asarray(xs, np.int64)[first]
        # Every frame: the scene test needs each one.
        sigma, (grid, cur) = neighbourhoods(image, [grid_points(shape), (ys, xs)])
        scene_moved = self._scene_moved(grid, sigma)
        if n_cand:
            vals = np.asarray(values, np.float64)[first]
            at = np.searchsorted(self._key, keys)
            known = np.zeros(len(keys), bool)
            inside = at < len(self._key)
            known[inside] = self._key[at[inside]] == keys[inside]
            i = at[known]
            ck = cur[known]
            fresh = np.isnan(self._ref[i, 0])
            sig = np.maximum(self._ref_sigma[i], sigma)
            moved = ~fresh & scene_moved & neighbourhood_changed(np.nan_to_num(self._ref[i]), ck, sig,
                                                                 self.scene_change)
            self._hits[i[moved]] += 1
            new_ref = moved | fresh
            self._ref[i[new_ref]] = ck[new_ref]
            self._ref_sigma[i[new_ref]] = sigma
            self._seen[i] += 1
            self._vsum[i] += vals[known]
            self._last[i] = f
            new, pos = ~known, at[~known]
            if new.any():
                n = int(new.sum())
                self._key = np.insert(self._key, pos, keys[new])
                self._hits = np.insert(self._hits, pos, 1)
                self._seen = np.insert(self._seen, pos, 1)
                self._first = np.insert(self._first, pos, f)
                self._last = np.insert(self._last, pos, f)
                self._vsum = np.insert(self._vsum, pos, vals[new])
                self._ref = np.insert(self._ref, pos, cur[new], axis=0)
                self._ref_sigma = np.insert(self._ref_sigma, pos, np.full(n, sigma, np.float32))
        if len(self._key) > self.max_tracked or f % 50 == 0:
            self._prune()
        return n_cand

    def _scene_moved(self, grid: np.ndarray, sigma: float) -> bool:
        """Did at least ``SCENE_CHANGE_SHARE`` of the whole scene's neighbourhoods change
        since the last frame that did? Compression (JPEG, video) removes the fine noise the
        noise estimate sees but keeps some at the block scale, so on a still, noisy,
        compressed scene a few neighbourhoods (up to 3.6% measured) pass the local test
        in every frame; a candidate there must not collect those as changes."""
        if self._scene is None or self._scene.shape != grid.shape:
            self._scene, self._scene_sigma = grid, sigma
            return False
        share = float(neighbourhood_changed(self._scene, grid, max(self._scene_sigma, sigma),
                                            max(SCENE_TEST_FLOOR, self.scene_change)).mean())
        if share < SCENE_CHANGE_SHARE:
            return False
        self._scene, self._scene_sigma = grid, sigma
        return True

    def _prune(self) -> None:
        """Forget unconfirmed candidates not seen for a while (texture comes and goes)."""
        dead = (self._hits < self.min_hits) & (self.frames - self._last > self.forget_after)
        if dead.any():
            self._take(~dead)
        if len(self._key) > self.max_tracked:   # still too many: keep the best evidence
            best = np.lexsort((-self._last, -self._seen, -self._hits))[: self.max_tracked // 2]
            self._take(np.sort(best))            # back in key order

    def reset(self) -> None:
        self._clear()
        self.known = frozenset()       # a new frame size: the positions name other photosites
        self.frames = 0
        self.shape = None

    @property
    def tracked(self) -> int:
        return len(self._key)

    def recurring(self, limit: int) -> list[tuple[int, int]]:
        """(x, y) of up to ``limit`` candidates seen more than once, most seen first: a
        detector with a tile budget looks there first."""
        some = np.nonzero(self._seen >= 2)[0]
        some = some[np.argsort(-self._seen[some], kind="stable")[:limit]]
        ys, xs, _ = _unpack(self._key[some])
        return list(zip(xs.tolist(), ys.tolist()))

    # --- reporting ----------------------------------------------------------------------
    def _sites(self):
        """Per pixel, both signs and every channel together (a photosite stuck at mid
        level is brighter than a dark scene and darker than a bright one; a whole-pixel
        error stands out most in whichever channel the scene there is darkest or
        brightest): sites (``y << _XBITS | x``), hits up and down, sightings, the share of
        frames seen since first seen, the summed values."""
        codes = self._key & 7
        sites, inv = np.unique(self._key >> 3, return_inverse=True)
        inv = inv.ravel()
        n = len(sites)
        # Sightings by sign tell the kind; hits are the pixel's first sighting plus every
        # change of neighbourhood counted on any of its tracks (each track's own first
        # sighting is no change: noise on a textured pixel starts a track per channel).
        seen_t = self._seen.astype(np.float64)
        up = np.bincount(inv, np.where(codes < 3, seen_t, 0.0), n)
        down = np.bincount(inv, np.where(codes < 3, 0.0, seen_t), n)
        hits = 1.0 + np.bincount(inv, np.maximum(self._hits - 1, 0).astype(np.float64), n)
        vsum = np.bincount(inv, self._vsum, n)
        first = np.full(n, self.frames, np.int64)
        np.minimum.at(first, inv, self._first)
        share = (up + down) / np.maximum(self.frames - first + 1, 1)
        return sites, up, down, hits, share, vsum

    def _report(self, keep, sites, up, down, hits, vsum, taken=None, extra=None) -> list[dict]:
        out: list[dict] = []
        cells: dict = {} if taken is None else taken   # 5x5 cells: a neighbour costs 9 lookups
        for s in keep.tolist():
            y, x = int(sites[s] >> _XBITS), int(sites[s] & ((1 << _XBITS) - 1))
            cy, cx = y // 5, x // 5
            if any(abs(px - x) <= 2 and abs(py - y) <= 2
                   for gy in (cy - 1, cy, cy + 1) for gx in (cx - 1, cx, cx + 1)
                   for py, px in cells.get((gy, gx), ())):
                continue          # the same defect seen in another channel, or its blob
            u, dn, h = int(up[s]), int(down[s]), int(hits[s])
            value = float(vsum[s]) / max(u + dn, 1)
            if u and dn and min(u, dn) >= max(1, (u + dn) // 4):
                kind = "stuck"
            else:
                kind = _kind(u >= dn, value)
            cells.setdefault((cy, cx), []).append((y, x))
            item = {"x": x, "y": y, "kind": kind}
            item.update(extra(s, h) if extra else {})
            item["value"] = round(value, 1)
            out.append(item)
            if len(out) >= MAX_DEFECTS:
                break
        return out

    def confirmed(self) -> list[dict]:
        """Confirmed defects ``{"x","y","kind","confidence","hits","value","known"}``, strongest first.
        Entries of one pixel in several channels (a whole-pixel defect) are merged."""
        return self.report()[0]

    def set_known(self, x: int, y: int, known: bool = True) -> None:
        """Mark the defect at (x, y) as known (or not); saved with the map. At most
        ``MAX_DEFECTS`` are kept."""
        pos = (int(x), int(y))
        if known and pos not in self.known and len(self.known) >= MAX_DEFECTS:
            raise ValueError(f"at most {MAX_DEFECTS} defects can be marked as known")
        self.known = self.known | {pos} if known else self.known - {pos}

    def undecided(self) -> list[dict]:
        """Candidates that persisted while their neighbourhood never changed enough:
        ``{"x","y","kind","seen","hits","value","reason"}``, most seen first."""
        return self.report()[1]

    def report(self) -> tuple[list[dict], list[dict]]:
        """``(confirmed(), undecided())`` in one pass: a candidate near a confirmed
        defect is that defect, not undecided."""
        if not len(self._key):
            return [], []
        sites, up, down, hits, share, vsum = self._sites()
        seen = up + down
        persists = share >= MIN_SEEN_SHARE
        keep = np.nonzero(persists & (hits >= self.min_hits))[0]
        keep = keep[np.argsort(-hits[keep], kind="stable")]     # strongest first, then row-major
        taken: dict = {}
        conf = self._report(keep, sites, up, down, hits, vsum, taken, lambda s, h: {
            "confidence": round(1.0 - 0.5 ** (h / self.min_hits), 3), "hits": h})
        known = self.known
        for d in conf:
            d["known"] = (d["x"], d["y"]) in known
        wait = np.nonzero(persists & (hits < self.min_hits) & (seen >= self.min_hits))[0]
        wait = wait[np.argsort(-seen[wait], kind="stable")]
        und = self._report(wait, sites, up, down, hits, vsum, taken, lambda s, h: {
            "seen": int(seen[s]), "hits": h,
            "reason": f"a candidate in {int(seen[s])} frames, but its neighbourhood changed only "
                      f"{h - 1} time(s) (needs {self.min_hits - 1}): a defect cannot be told from a "
                      f"bright point of a still scene; the lens-capped dark-frame check "
                      f"(focus-assist defects --dark N) can"})
        return conf, und

    # --- saving and resuming --------------------------------------------------------------
    def to_json(self) -> dict:
        """The confirmed map plus the candidates with some evidence (to resume after a
        restart): tracks are ``[y, x, code, hits, seen, first, value_sum]``."""
        some = np.nonzero((self._hits >= 2) | (self._seen >= 2))[0]
        if len(some) > MAX_SAVED_TRACKS:   # the strongest evidence, so a save costs the same every time
            order = np.lexsort((-self._last[some], -self._seen[some], -self._hits[some]))
            some = np.sort(some[order[:MAX_SAVED_TRACKS]])
        ys, xs, codes = _unpack(self._key[some])
        tracks = [[y, x, c, h, n, fr, round(v, 1)] for y, x, c, h, n, fr, v in
                  zip(ys.tolist(), xs.tolist(), codes.tolist(), self._hits[some].tolist(),
                      self._seen[some].tolist(), self._first[some].tolist(), self._vsum[some].tolist())]
        conf, und = self.report()
        return {"version": MAP_VERSION, "shape": list(self.shape) if self.shape else None,
                "frames": self.frames, "min_hits": self.min_hits,
                "defects": conf, "undecided": und, "tracks": tracks,
                "known": sorted([x, y] for x, y in self.known), "saved_at": time.time()}

    def load_json(self, data) -> None:
        """Resume from ``to_json()`` output (or a version-1 file, migrated). ValueError,
        with the reason, when it does not fit; nothing is loaded then."""
        state = _parse_state(data)
        self.shape, self.frames = state["shape"], state["frames"]
        self.known = state["known"]
        rows = state["tracks"]
        keys = np.array(sorted(rows), np.int64)
        vals = [rows[k] for k in keys.tolist()]
        self._key = keys
        self._hits = np.array([r[0] for r in vals], np.int32)
        self._seen = np.array([r[1] for r in vals], np.int32)
        self._first = np.array([r[2] for r in vals], np.int64)
        self._last = np.full(len(keys), self.frames, np.int64)
        self._vsum = np.array([r[3] for r in vals], np.float64)
        self._ref = np.full((len(keys), 2 * N_BLOCKS), np.nan, np.float32)
        self._ref_sigma = np.zeros(len(keys), np.float32)


_MAX_FRAMES = 1 << 40       # ~35,000 years at 1000 analysed frames a second
_MAX_COUNT = (1 << 31) - 1  # hits and sightings are int32


def _int(v, lo: int, hi: int, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{what} is not an integer in {lo}..{hi}")
    return v


def _parse_state(data) -> dict:
    """Validate a saved map (any JSON value) into ``{"shape", "frames", "tracks"}``."""
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object but {type(data).__name__}")
    version = data.get("version", 1)
    if version not in (1, MAP_VERSION):
        raise ValueError(f"unknown map version {version!r}")
    shape = data.get("shape")
    if shape is not None:
        if not isinstance(shape, list) or len(shape) != 2:
            raise ValueError("shape is not [height, width]")
        shape = tuple(_int(v, 1, (1 << _XBITS) - 1, "shape") for v in shape)
    frames = _int(data.get("frames", 0), 0, _MAX_FRAMES, "frames")
    tracks = data.get("tracks", [])
    if not isinstance(tracks, list) or len(tracks) > 2 * MAX_SAVED_TRACKS:
        raise ValueError(f"tracks is not a list of at most {2 * MAX_SAVED_TRACKS}")
    width = 6 if version == 1 else 7
    lim_y, lim_x = shape if shape else (1 << _XBITS, 1 << _XBITS)
    rows = {}
    for t in tracks:
        if not isinstance(t, list) or len(t) != width:
            raise ValueError(f"a track is not a list of {width} numbers")
        y, x = _int(t[0], 0, lim_y - 1, "track y"), _int(t[1], 0, lim_x - 1, "track x")
        c = _int(t[2], 0, len(CODES) - 1, "track code")
        hits = _int(t[3], 0, _MAX_COUNT, "track hits")
        if version == 1:      # [y, x, code, hits, signature, value_sum]: seen only at hits
            seen, first, vsum = hits, max(1, frames - hits + 1), t[5]
        else:
            seen = _int(t[4], 0, _MAX_COUNT, "track seen")
            first, vsum = _int(t[5], 0, _MAX_FRAMES, "track first frame"), t[6]
        if isinstance(vsum, bool) or not isinstance(vsum, (int, float)) or \
                not math.isfinite(vsum) or not 0 <= vsum <= 255.0 * max(seen, hits, 1):
            raise ValueError("a track's value sum is out of range")
        rows[int(_pack(y, x, c))] = (hits, seen, first, float(vsum))
    if version == 1:
        log.info("defect map: migrated a version-1 map (%d tracks); neighbourhoods are "
                 "measured afresh", len(rows))
    known = data.get("known", [])
    if not isinstance(known, list) or len(known) > MAX_DEFECTS:
        raise ValueError(f"known is not a list of at most {MAX_DEFECTS}")
    for k in known:
        if not isinstance(k, list) or len(k) != 2:
            raise ValueError("a known defect is not [x, y]")
    known = frozenset((_int(k[0], 0, lim_x - 1, "known x"), _int(k[1], 0, lim_y - 1, "known y"))
                      for k in known)
    return {"shape": shape, "frames": frames, "tracks": rows, "known": known}


def add_frame(dmap: DefectMap, bgr: np.ndarray, detector=None) -> None:
    """One frame into the map: classic candidates, or the defect net's detections."""
    if detector is None:
        dmap.add(bgr)
        return
    # Recurring candidates get a tile first, even when brighter glints compete for the
    # tile budget or this frame's scene hides the defect.
    dets = detector.detect(bgr, dmap.recurring(detector.opts.max_tiles))
    ys = np.array([d["y"] for d in dets], np.int64)
    xs = np.array([d["x"] for d in dets], np.int64)
    # The net names a kind, not a channel: hot counts as brighter, the rest as darker (G).
    codes = np.array([1 if d["kind"] == "hot" else 4 for d in dets], np.int64)
    vals = bgr[ys, xs, 1] if len(dets) else np.zeros(0)
    dmap.add_candidates(bgr, ys, xs, codes, vals)


def load_detector(cfg, live: bool = False):
    """The defect net when ``[defects] detector = "net"``, else None (the classic rule).

    Its detections feed a persistence map, so each frame takes the sequence's per-frame
    bar. ``live``: the loop's per-frame tile budget; the video report keeps the full one.
    """
    if cfg.defects.detector != "net":
        return None
    # ModelError (one clear line) if it cannot load
    return DefectDetector.from_config(cfg, live=live, sequence=True)


