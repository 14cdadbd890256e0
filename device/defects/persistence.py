"""Pixel defects without a model: the single-frame rule, the live persistent map, and the
lens-capped sensor check (dark and flat frames).

Single frame (``frame_candidates``): the rule ISPs use for dynamic defect correction,
made scene-aware. A pixel is a candidate when, in one colour channel, it lies above
the maximum (or below the minimum) of the 16-pixel ring at distance 2 around it by
``threshold + spread_gain * ring range``, and is the strongest such pixel in its 3x3.
The ring skips the 3x3 core because a demosaiced photosite defect is a ~3x3 blob; the
range term keeps busy texture from qualifying. On its own this still flags hundreds of
texture points per megapixel in real photographs (see bench/bench_defects.py): a single
frame cannot tell a stuck photosite from a glint. Persistence can.

Persistence (``DefectMap``): a defect stays on one sensor pixel, in one colour channel,
while the scene moves; texture does not. A candidate counts as a *hit* for its
(pixel, channel, sign) only when the local scene (7x7 grey mean) differs by at least
``scene_change`` from the last counted hit; a pixel and channel is confirmed once its
hits (both signs together: a stuck photosite is brighter than a dark scene and darker
than a bright one) reach ``min_hits``.
A camera on a tripod looking at a still scene therefore confirms nothing, by design. Sensor
noise alone moves a textured pixel's 7x7 mean by ``scene_change`` now and then (7.8% of
pixels per frame on the simulated camera), so a hit also needs the frame as a whole to
have moved: the median change of the local mean over the frame (every 4th pixel) since
the previous analysed frame must reach ``scene_change``. A still scene measures 0.8 grey
levels, a focus pull 0.9-1.1, a pan 7-49.

Sensor check (``sensor_check``): with the lens capped, N dark frames are averaged and
each pixel is compared with the local median of the stack, in units of a noise sigma
found by iterative sigma-clipping; optional flat frames (an evenly lit surface) reveal
dead pixels and tell stuck pixels (which do not respond to light) from hot ones.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from device.common.atomic import atomic_write_bytes, atomic_write_json
from device.common.preprocess import DEFECT_KINDS, to_bgr

log = logging.getLogger(__name__)

# The 16-pixel ring at distance 2 (a 5x5 square minus its 3x3 core).
RING = np.ones((5, 5), np.uint8)
RING[1:4, 1:4] = 0
MARGIN = 2          # demosaicers leave garbage on the outermost rows and columns
LOCAL_MEAN = 7      # window of the local-scene signature
SCENE_STEP = 4      # subsampling of the frame-wide scene-motion measure
SATURATED = 230.0   # 0..255: a pixel stuck at full scale is reported as hot
CODES = ("+b", "+g", "+r", "-b", "-g", "-r")   # sign and channel of a candidate
# The live map reports at most this many defects, strongest first: far more than a usable
# sensor has, and it keeps the map, its file and the overlay's work bounded on a scene
# that fools the persistence rule.
MAX_DEFECTS = 1000
# Candidates with some evidence kept in the saved map (to resume after a restart): the
# file and the memory a save takes stay the same size on a long run.
MAX_SAVED_TRACKS = 5000


def frame_candidates(image: np.ndarray, threshold: float = 16.0, spread_gain: float = 0.3):
    """Candidates of one frame: ``(ys, xs, codes, strength, values)`` arrays.

    ``codes`` index ``CODES`` (0-2 brighter than the ring in B, G, R; 3-5 darker);
    ``strength`` is the excess over the ring in units of the local limit (> 1);
    ``values`` the pixel's level in that channel.
    """
    bgr = to_bgr(image)
    ring_max = cv2.dilate(bgr, RING)
    ring_min = cv2.erode(bgr, RING)
    # Saturating uint8 arithmetic in OpenCV: a channel is either above its ring's maximum
    # (up) or below its minimum (down), never both, so their sum is the excess.
    up = cv2.subtract(bgr, ring_max)
    down = cv2.subtract(ring_min, bgr)
    excess = cv2.add(up, down)
    e0, e1, e2 = cv2.split(excess)
    # The limit is at least ``threshold``, so only pixels beyond it can qualify: a small
    # share of a frame, and the float work below is done for those alone.
    ys, xs = np.nonzero(cv2.max(cv2.max(e0, e1), e2) > threshold)
    spread = (ring_max[ys, xs].astype(np.float32) - ring_min[ys, xs])
    ratio = excess[ys, xs] / (np.float32(threshold) + np.float32(spread_gain) * spread)
    strength = ratio.max(axis=1)
    keep = (strength > 1.0) & (ys >= MARGIN) & (xs >= MARGIN) & \
        (ys < bgr.shape[0] - MARGIN) & (xs < bgr.shape[1] - MARGIN)
    ys, xs, ratio, strength = ys[keep], xs[keep], ratio[keep], strength[keep]
    best = np.zeros(bgr.shape[:2], np.float32)
    best[ys, xs] = strength
    peak = strength >= cv2.dilate(best, np.ones((3, 3), np.uint8))[ys, xs]   # strongest in its 3x3
    ys, xs, ratio, strength = ys[peak], xs[peak], ratio[peak], strength[peak]
    ch = ratio.argmax(axis=1)
    codes = np.where(up[ys, xs, ch] > 0, ch, ch + 3)
    values = bgr[ys, xs, ch]
    return ys, xs, codes, strength, values


def local_signature(image: np.ndarray) -> np.ndarray:
    """7x7 mean grey level: what 'the scene around a pixel' is, for scene changes."""
    bgr = to_bgr(image)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return cv2.blur(grey.astype(np.float32), (LOCAL_MEAN, LOCAL_MEAN))


class SceneMotion:
    """Did the frame as a whole move since the previous one? The median change of the
    local means (``local_signature``, every ``SCENE_STEP``-th pixel) must reach the
    threshold: a still scene measures 0.8 grey levels from sensor noise, a focus pull
    0.9-1.1, a pan 7-49. Persistence rules use it so that noise or refocusing on a
    tripod is never taken for the scene moving under a defect."""

    def __init__(self):
        self._prev: Optional[np.ndarray] = None

    def update(self, scene: np.ndarray, threshold: float) -> bool:
        coarse = scene[::SCENE_STEP, ::SCENE_STEP]
        moved = self._prev is not None and self._prev.shape == coarse.shape and \
            float(np.median(np.abs(coarse - self._prev))) >= threshold
        self._prev = coarse.copy()
        return moved


def _kind(sign_hot: bool, mean_value: float) -> str:
    if sign_hot:
        return "hot" if mean_value >= 160 else "stuck"
    return "dead" if mean_value <= 60 else "stuck"


# Track keys pack (y, x, code) into one int64 so the tracks live in a few flat arrays,
# sorted by key: about 30 bytes a track instead of ~300 for a dict of lists, and a frame's
# candidates are matched with one searchsorted instead of a Python loop.
_XBITS = 20          # x and y below 2**20: far beyond any sensor


def _pack(ys, xs, codes) -> np.ndarray:
    return ((np.asarray(ys, np.int64) << _XBITS) | np.asarray(xs, np.int64)) << 3 | np.asarray(codes, np.int64)


def _unpack(keys: np.ndarray):
    return keys >> (3 + _XBITS), (keys >> 3) & ((1 << _XBITS) - 1), keys & 7


class DefectMap:
    """Accumulates candidates over frames; ``confirmed()`` is the persistent map.

    Memory is bounded: unconfirmed candidates not seen for ``forget_after`` analysed frames
    are forgotten every 50 frames, and past ``max_tracked`` tracks the half with the least
    evidence goes (confirmed defects have the most hits, so they stay). ``confirmed()``
    reports at most ``MAX_DEFECTS`` and a save keeps at most ``MAX_SAVED_TRACKS`` candidates.
    """

    def __init__(self, *, threshold: float = 16.0, spread_gain: float = 0.3, min_hits: int = 5,
                 scene_change: float = 2.0, forget_after: int = 300, max_tracked: int = 50_000):
        self.threshold, self.spread_gain = threshold, spread_gain
        self.min_hits, self.scene_change = int(min_hits), float(scene_change)
        self.forget_after, self.max_tracked = int(forget_after), int(max_tracked)
        self.frames = 0
        self.shape: Optional[tuple[int, int]] = None
        self._clear()

    def _clear(self) -> None:
        # One entry per (y, x, code), sorted by key: hits, the local scene at the last
        # counted hit, the sum of the pixel's values over hits, the last frame seen.
        self._key = np.zeros(0, np.int64)
        self._hits = np.zeros(0, np.int32)
        self._sig = np.zeros(0, np.float32)
        self._vsum = np.zeros(0, np.float64)
        self._last = np.zeros(0, np.int64)
        self._motion = SceneMotion()

    def _take(self, sel) -> None:
        self._key, self._hits, self._sig = self._key[sel], self._hits[sel], self._sig[sel]
        self._vsum, self._last = self._vsum[sel], self._last[sel]

    @classmethod
    def from_config(cls, d) -> "DefectMap":
        return cls(threshold=d.threshold, spread_gain=d.spread_gain, min_hits=d.min_hits,
                   scene_change=d.scene_change)

    def add(self, image: np.ndarray) -> int:
        """Analyse one frame; returns how many candidates it had."""
        ys, xs, codes, _, values = frame_candidates(image, self.threshold, self.spread_gain)
        return self.add_candidates(image, ys, xs, codes, values)

    def add_candidates(self, image, ys, xs, codes, values) -> int:
        shape = image.shape[:2]
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            # A new stream size (camera reconfigured): positions no longer mean the same pixel.
            log.info("defect map: frame size changed to %dx%d; starting a new map", shape[1], shape[0])
            self.reset()
            self.shape = shape
        self.frames += 1
        f = self.frames
        n_cand = len(ys)
        scene = local_signature(image)
        scene_moved = self._motion.update(scene, self.scene_change)
        if n_cand:
            ys, xs = np.asarray(ys, np.int64), np.asarray(xs, np.int64)
            sig = scene[ys, xs].astype(np.float32)
            # A key seen twice in one frame (a detector may repeat itself) counts once.
            keys, first = np.unique(_pack(ys, xs, codes), return_index=True)
            sig, vals = sig[first], np.asarray(values, np.float64)[first]
            at = np.searchsorted(self._key, keys)
            known = np.zeros(len(keys), bool)
            inside = at < len(self._key)
            known[inside] = self._key[at[inside]] == keys[inside]
            i = at[known]
            # Seen again: alive; a new hit only when the scene around it changed.
            moved = (np.abs(sig[known] - self._sig[i]) >= self.scene_change) & scene_moved
            j = i[moved]
            self._hits[j] += 1
            self._sig[j] = sig[known][moved]
            self._vsum[j] += vals[known][moved]
            self._last[i] = f
            new, pos = ~known, at[~known]
            if new.any():
                self._key = np.insert(self._key, pos, keys[new])
                self._hits = np.insert(self._hits, pos, 1)
                self._sig = np.insert(self._sig, pos, sig[new])
                self._vsum = np.insert(self._vsum, pos, vals[new])
                self._last = np.insert(self._last, pos, f)
        if len(self._key) > self.max_tracked or f % 50 == 0:
            self._prune()
        return n_cand

    def _prune(self) -> None:
        """Forget unconfirmed candidates not seen for a while (texture comes and goes)."""
        dead = (self._hits < self.min_hits) & (self.frames - self._last > self.forget_after)
        if dead.any():
            self._take(~dead)
        if len(self._key) > self.max_tracked:   # still too many: keep the best evidence
            best = np.lexsort((-self._last, -self._hits))[: self.max_tracked // 2]
            self._take(np.sort(best))            # back in key order

    def reset(self) -> None:
        self._clear()
        self.frames = 0
        self.shape = None

    @property
    def tracked(self) -> int:
        return len(self._key)

    def confirmed(self) -> list[dict]:
        """Confirmed defects ``{"x","y","kind","confidence","hits","value"}``, strongest first.
        Entries of one pixel in several channels (a whole-pixel defect) are merged."""
        if not len(self._key):
            return []
        ys, xs, codes = _unpack(self._key)
        # Hits of one pixel and channel add up over both signs: a photosite stuck at mid
        # level is brighter than a dark scene and darker than a bright one.
        sites, inv = np.unique(self._key >> 3 << 2 | codes % 3, return_inverse=True)
        inv = inv.ravel()
        hits = self._hits.astype(np.float64)
        up = np.bincount(inv, np.where(codes < 3, hits, 0.0), len(sites))
        down = np.bincount(inv, np.where(codes < 3, 0.0, hits), len(sites))
        vsum = np.bincount(inv, self._vsum, len(sites))
        total = up + down
        keep = np.nonzero(total >= self.min_hits)[0]
        keep = keep[np.argsort(-total[keep], kind="stable")]     # strongest first, then row-major
        out: list[dict] = []
        cells: dict = {}          # 5x5 cells: finding a neighbour costs 9 lookups, not len(out)
        for s in keep.tolist():
            y, x = int(sites[s] >> (2 + _XBITS)), int((sites[s] >> 2) & ((1 << _XBITS) - 1))
            cy, cx = y // 5, x // 5
            if any(abs(out[i]["x"] - x) <= 2 and abs(out[i]["y"] - y) <= 2
                   for gy in (cy - 1, cy, cy + 1) for gx in (cx - 1, cx, cx + 1)
                   for i in cells.get((gy, gx), ())):
                continue          # the same defect seen in another channel, or its blob
            u, dn, h = int(up[s]), int(down[s]), int(total[s])
            value = float(vsum[s]) / h
            if u and dn and min(u, dn) >= max(1, h // 4):
                kind = "stuck"
            else:
                kind = _kind(u >= dn, value)
            conf = 1.0 - 0.5 ** (h / self.min_hits)
            cells.setdefault((cy, cx), []).append(len(out))
            out.append({"x": x, "y": y, "kind": kind, "confidence": round(conf, 3),
                        "hits": h, "value": round(value, 1)})
            if len(out) >= MAX_DEFECTS:
                break
        return out

    # --- saving and resuming --------------------------------------------------------------
    def to_json(self) -> dict:
        """The confirmed map plus the candidates with some evidence (to resume after a restart)."""
        some = np.nonzero(self._hits >= 2)[0]
        if len(some) > MAX_SAVED_TRACKS:   # the strongest evidence, so a save costs the same every time
            some = np.sort(some[np.lexsort((-self._last[some], -self._hits[some]))[:MAX_SAVED_TRACKS]])
        ys, xs, codes = _unpack(self._key[some])
        tracks = [[y, x, c, h, round(s, 2), round(v, 1)] for y, x, c, h, s, v in
                  zip(ys.tolist(), xs.tolist(), codes.tolist(), self._hits[some].tolist(),
                      self._sig[some].astype(np.float64).tolist(), self._vsum[some].tolist())]
        return {"version": 1, "shape": list(self.shape) if self.shape else None,
                "frames": self.frames, "min_hits": self.min_hits,
                "defects": self.confirmed(), "tracks": tracks, "saved_at": time.time()}

    def load_json(self, data: dict) -> bool:
        """Resume from ``to_json()`` output; False (and nothing loaded) if it does not fit."""
        try:
            shape = tuple(data["shape"]) if data.get("shape") else None
            tracks = {}
            for y, x, c, h, s, v in data.get("tracks", []):
                y, x, c = int(y), int(x), int(c)
                if not (0 <= y < 1 << _XBITS and 0 <= x < 1 << _XBITS and 0 <= c < len(CODES)):
                    raise ValueError("track outside the sensor")
                tracks[int(_pack(y, x, c))] = (int(h), float(s), float(v))
            frames = int(data.get("frames", 0))
        except (KeyError, TypeError, ValueError):
            return False
        self.shape, self.frames = shape, frames
        keys = np.array(sorted(tracks), np.int64)
        rows = [tracks[k] for k in keys.tolist()]
        self._key = keys
        self._hits = np.array([r[0] for r in rows], np.int32)
        self._sig = np.array([r[1] for r in rows], np.float32)
        self._vsum = np.array([r[2] for r in rows], np.float64)
        self._last = np.full(len(keys), frames, np.int64)
        return True


def add_frame(dmap: DefectMap, bgr: np.ndarray, detector=None) -> None:
    """One frame into the map: classic candidates, or the defect net's detections."""
    if detector is None:
        dmap.add(bgr)
        return
    dets = detector.detect(bgr)
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
    from device.defects.net import DefectDetector

    # ModelError (one clear line) if it cannot load
    return DefectDetector.from_config(cfg, live=live, sequence=True)


# --- the live sink --------------------------------------------------------------------------

class DefectMapSink:
    """Loop sink: analyses one frame in N on its own thread; puts the confirmed map into
    every result as ``result["defects"]`` (the overlay draws it) and saves it atomically."""

    def __init__(self, defect_map: DefectMap, *, every_n: int = 5, map_file: Optional[Path] = None,
                 save_interval_s: float = 30.0, detector=None):
        self.map = defect_map
        self.every_n = max(1, int(every_n))
        self.map_file = Path(map_file) if map_file else None
        self.save_interval_s = save_interval_s
        self.detector = detector          # optional DefectDetector (the defect net)
        self._confirmed: list = []
        self._pending = None
        self._cond = threading.Condition()
        self._stop = False
        self._last_save = time.monotonic()
        self._saved_count = -1
        self.errors = 0
        if self.map_file is not None and self.map_file.exists():
            self._resume()
        self._thread = threading.Thread(target=self._work, name="defect-map", daemon=True)
        self._thread.start()

    def _resume(self) -> None:
        import json

        try:
            data = json.loads(self.map_file.read_text())
        except (OSError, ValueError) as exc:
            log.warning("defect map: cannot read %s (%s); starting a new map", self.map_file, exc)
            return
        if self.map.load_json(data):
            self._confirmed = self.map.confirmed()
            log.info("defect map: resumed %d confirmed defect(s) from %s", len(self._confirmed), self.map_file)

    def on_frame(self, frame, result: dict) -> None:
        result["defects"] = self._confirmed
        if frame.index % self.every_n:
            return
        with self._cond:
            self._pending = frame     # only the newest frame waits; older ones are skipped
            self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stop)
                if self._stop:
                    return
                frame, self._pending = self._pending, None
            try:
                self._analyse(frame.display)
                self._confirmed = self.map.confirmed()
                if time.monotonic() - self._last_save >= self.save_interval_s:
                    self.save()
            except Exception as exc:   # never take the loop down over a map
                self.errors += 1
                log.error("defect map: analysis failed: %s", exc)

    def _analyse(self, bgr: np.ndarray) -> None:
        add_frame(self.map, bgr, self.detector)

    def save(self) -> None:
        self._last_save = time.monotonic()
        if self.map_file is None:
            return
        try:
            self.map_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.map_file, self.map.to_json())
        except OSError as exc:
            log.warning("defect map: cannot save %s: %s", self.map_file, exc.strerror or exc)

    def stats(self) -> dict:
        return {"defects": {"confirmed": len(self._confirmed), "frames_analysed": self.map.frames,
                            "tracked": self.map.tracked, "map_file": str(self.map_file) if self.map_file else None,
                            "method": "net" if self.detector is not None else "classic",
                            "list": self._confirmed[:100]}}

    def reconfigure(self, cfg) -> None:
        d = cfg.defects
        self.every_n = d.every_n_frames
        self.save_interval_s = d.save_interval_s
        self.map.threshold, self.map.spread_gain = d.threshold, d.spread_gain
        self.map.min_hits, self.map.scene_change = d.min_hits, d.scene_change

    def close(self) -> None:
        with self._cond:
            if self._stop:
                return
            self._stop = True
            self._cond.notify()
        self._thread.join(10)
        self.save()


def build_defect_sink(cfg, runtime: dict) -> Optional[DefectMapSink]:
    """The live map when ``[defects] live = true``; registered as ``runtime["defect_map"]``."""
    d = cfg.defects
    if not d.live:
        return None
    map_file = Path(d.map_file).expanduser() if d.map_file else cfg.service.resolved_state_dir() / "defects.json"
    sink = DefectMapSink(DefectMap.from_config(d), every_n=d.every_n_frames, map_file=map_file,
                         save_interval_s=d.save_interval_s, detector=load_detector(cfg, live=True))
    runtime["defect_map"] = sink
    log.info("defect map: live (%s), one frame in %d, saved to %s", d.detector, d.every_n_frames, map_file)
    return sink


# --- the lens-capped sensor check ---------------------------------------------------------------

def clipped_sigma(values: np.ndarray, k: float = 3.0, iters: int = 10) -> tuple[float, float]:
    """(mean, sigma) of ``values`` after iterative k-sigma clipping (outliers are the point
    of this check, so they must not inflate the noise estimate)."""
    v = np.asarray(values, np.float64).ravel()
    keep = np.ones(v.size, bool)
    mean, sd = float(v.mean()), float(v.std())
    for _ in range(iters):
        new = np.abs(v - mean) <= k * max(sd, 1e-9)
        if new.sum() < 10 or np.array_equal(new, keep):
            break
        keep = new
        mean, sd = float(v[keep].mean()), float(v[keep].std())
    return mean, max(sd, 1e-3)


def stack_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of N frames, float32 (H, W, C): averaging divides temporal noise by sqrt(N)."""
    acc = None
    for f in frames:
        img = to_bgr(f).astype(np.float32)
        if acc is None:
            acc = img
        elif img.shape != acc.shape:
            raise ValueError(f"frame size changed during the check: {img.shape} vs {acc.shape}")
        else:
            acc += img
    if acc is None:
        raise ValueError("no frames")
    return acc / len(frames)


def _deviation(stack: np.ndarray, clip_k: float = 3.0):
    """Per pixel: the channel deviating most from its local (5x5) median, the signed
    deviation in clipped-sigma units, and the level; plus the sigmas."""
    med = np.stack([cv2.medianBlur(stack[..., c], 5) for c in range(stack.shape[2])], axis=2)
    resid = stack - med
    sigmas = [clipped_sigma(resid[MARGIN:-MARGIN, MARGIN:-MARGIN, c], clip_k)[1] for c in range(stack.shape[2])]
    z = resid / np.array(sigmas, np.float32)
    ch = np.abs(z).argmax(axis=2)
    zz = np.take_along_axis(z, ch[..., None], 2)[..., 0]
    rr = np.take_along_axis(resid, ch[..., None], 2)[..., 0]
    level = np.take_along_axis(stack, ch[..., None], 2)[..., 0]
    return zz, rr, level, sigmas


def sensor_check(darks: Sequence[np.ndarray], flats: Optional[Sequence[np.ndarray]] = None, *,
                 k: float = 6.0, min_abs: float = 6.0) -> dict:
    """Hot/dead/stuck map from lens-capped dark frames (and optional flat frames).

    * hot: brighter than its dark-stack neighbourhood by ``k`` sigma and ``min_abs`` levels;
    * stuck: abnormal in the darks or the flats, not saturated, and it does not respond to
      light: its flat level minus its dark level is under half of what its neighbours gain;
    * dead: darker than its flat-stack neighbourhood by ``k`` sigma and ``min_abs``.
    Without flats, dead pixels are invisible (a dead pixel in the dark is just dark) and
    stuck ones are reported as hot.
    """
    dark = stack_frames(darks)
    dz, dr, dlevel, dsig = _deviation(dark)
    h, w = dz.shape
    inner = np.zeros((h, w), bool)
    inner[MARGIN:h - MARGIN, MARGIN:w - MARGIN] = True
    hot = inner & (dz > k) & (dr > min_abs)
    meta = {"dark_frames": len(darks), "flat_frames": len(flats) if flats else 0, "k_sigma": k,
            "min_abs": min_abs, "dark_sigma": [round(s, 4) for s in dsig],
            "dark_level": round(float(np.median(dark)), 3), "width": int(w), "height": int(h)}
    kinds = np.zeros((h, w), np.int8)      # 0 none, then 1 + index in DEFECT_KINDS
    code = {kd: 1 + i for i, kd in enumerate(DEFECT_KINDS)}
    kinds[hot] = code["hot"]
    z_out, level_out = dz.copy(), dlevel.copy()
    if flats:
        flat = stack_frames(flats)
        if flat.shape != dark.shape:
            raise ValueError("flat and dark frames differ in size")
        fz, fr, flevel, fsig = _deviation(flat)
        gain = (flat - dark).mean(axis=2)
        gain_med = cv2.medianBlur(gain.astype(np.float32), 5)
        unresponsive = gain < 0.5 * np.maximum(gain_med, 1.0)
        abnormal_flat = inner & (np.abs(fz) > k) & (np.abs(fr) > min_abs)
        # A hot pixel saturates and so also looks unresponsive: stuck means stuck mid-scale.
        saturated = dlevel >= SATURATED
        # Stuck reads a fixed level above black: brighter than its neighbours in the darks
        # or in the flats. Dead reads black: darker in the flats, not brighter in the darks.
        stuck = inner & unresponsive & ~saturated & (hot | (abnormal_flat & ((fr > 0) | (dr > min_abs))))
        dead = inner & abnormal_flat & (fr < 0) & ~stuck & ~hot
        kinds[stuck] = code["stuck"]
        kinds[dead] = code["dead"]
        use_flat = (dead | (stuck & ~hot))
        z_out[use_flat] = fz[use_flat]
        level_out[use_flat] = flevel[use_flat]
        meta.update(flat_sigma=[round(s, 4) for s in fsig], flat_level=round(float(np.median(flat)), 3),
                    median_response=round(float(np.median(gain)), 3))
    ys, xs = np.nonzero(kinds)
    rows = [{"x": int(x), "y": int(y), "kind": DEFECT_KINDS[kinds[y, x] - 1], "value": round(float(level_out[y, x]), 2),
             "sigma": round(float(z_out[y, x]), 2)} for y, x in zip(ys, xs)]
    rows.sort(key=lambda r: -abs(r["sigma"]))
    meta["counts"] = {kd: sum(r["kind"] == kd for r in rows) for kd in DEFECT_KINDS}
    return {"meta": meta, "defects": rows}


def write_check(out_dir: Path, check: dict, *, overwrite: bool = False) -> tuple[Path, Path]:
    """``defects.json`` and ``defects.csv`` (x, y, kind, value, sigma), atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(["x", "y", "kind", "value", "sigma"])
    for r in check["defects"]:
        wr.writerow([r["x"], r["y"], r["kind"], r["value"], r["sigma"]])
    j = atomic_write_json(out_dir / "defects.json", check, overwrite=overwrite)
    c = atomic_write_bytes(out_dir / "defects.csv", buf.getvalue().encode(), overwrite=overwrite)
    return j, c


def match(found: Sequence[dict], truth: Sequence[tuple[float, float]], tol: float = 2.5) -> tuple[int, int]:
    """(true defects found, false detections): each detection within ``tol`` px of a true
    defect centre (y, x) finds it; detections near no true defect are false."""
    hit = [False] * len(truth)
    false = 0
    for d in found:
        best, bd = None, tol
        for i, (ty, tx) in enumerate(truth):
            dist = math.hypot(ty - d["y"], tx - d["x"])
            if dist <= bd:
                best, bd = i, dist
        if best is None:
            false += 1
        else:
            hit[best] = True
    return sum(hit), false
