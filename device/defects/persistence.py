"""The persistent defect map: defects stay on one sensor pixel while the scene moves.

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

The single-frame rule is ``device.defects.candidates``; the loop sink ``device.defects.live``;
the lens-capped sensor check ``device.defects.sensor_check``.
"""
from __future__ import annotations

import logging
import time
from typing import Optional

import numpy as np

from device.defects.net import DefectDetector
from device.defects.candidates import CODES, SceneMotion, _kind, frame_candidates, local_signature

log = logging.getLogger(__name__)

# The live map reports at most this many defects, strongest first: far more than a usable
# sensor has, and it keeps the map, its file and the overlay's work bounded on a scene
# that fools the persistence rule.
MAX_DEFECTS = 1000
# Candidates with some evidence kept in the saved map (to resume after a restart): the
# file and the memory a save takes stay the same size on a long run.
MAX_SAVED_TRACKS = 5000


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
    # ModelError (one clear line) if it cannot load
    return DefectDetector.from_config(cfg, live=live, sequence=True)


