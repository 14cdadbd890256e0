"""The live defect map as a frame-loop sink: one frame in N analysed on its own thread."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np

from device.common.atomic import atomic_write_json
from device.common.jsonio import read_json_file
from device.defects.persistence import DefectMap, add_frame
from device.loop.result import FrameResult
from device.loop.sink import Sink

log = logging.getLogger(__name__)

# A saved map holds at most MAX_SAVED_TRACKS short tracks and MAX_DEFECTS entries (well
# under 1 MB); anything far larger is not one.
MAX_MAP_BYTES = 16 << 20


class DefectMapSink(Sink):
    """Loop sink: analyses one frame in N on its own thread; attaches the confirmed map to
    every result as ``result.defects`` (the overlay draws it) and saves it atomically."""

    def __init__(self, defect_map: DefectMap, *, every_n: int = 5, map_file: Optional[Path] = None,
                 save_interval_s: float = 30.0, detector=None):
        self.map = defect_map
        self.every_n = max(1, int(every_n))
        self.map_file = Path(map_file) if map_file else None
        self.save_interval_s = save_interval_s
        self.detector = detector          # optional DefectDetector (the defect net)
        self._confirmed: list = []
        self._undecided = 0
        self._pending = None
        self._cond = threading.Condition()
        self._stop = False
        self._last_save = time.monotonic()
        self._saved_count = -1
        self._save_soon = False
        self._known_lock = threading.Lock()
        self.errors = 0
        if self.map_file is not None and (self.map_file.exists() or self.map_file.is_symlink()):
            self._resume()
        self._thread = threading.Thread(target=self._work, name="defect-map", daemon=True)
        self._thread.start()

    def _resume(self) -> None:
        if not self.map_file.is_file():      # a FIFO or a device would block or never end
            self._set_aside("not a regular file")
            return
        try:
            self.map.load_json(read_json_file(self.map_file, max_bytes=MAX_MAP_BYTES))
        except OSError as exc:
            log.warning("defect map: cannot read %s (%s); starting a new map", self.map_file,
                        exc.strerror or exc)
            return
        except ValueError as exc:
            self.map.reset()
            self._set_aside(str(exc))
            return
        self._confirmed = self.map.confirmed()
        log.info("defect map: resumed %d confirmed defect(s) from %s", len(self._confirmed), self.map_file)

    def _set_aside(self, why: str) -> None:
        """A damaged map is kept for a person to look at, under a name no run reads."""
        aside = self.map_file.with_name(f"{self.map_file.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            self.map_file.replace(aside)
        except OSError as exc:
            log.warning("defect map: %s is damaged (%s) and cannot be set aside (%s); starting a "
                        "new map", self.map_file, why, exc.strerror or exc)
            return
        log.warning("defect map: %s is damaged (%s); set aside as %s, starting a new map",
                    self.map_file, why, aside.name)

    def on_frame(self, frame, result: FrameResult) -> None:
        result.defects = self._confirmed
        if frame.index % self.every_n:
            return
        with self._cond:
            self._pending = frame     # only the newest frame waits; older ones are skipped
            self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stop or self._save_soon)
                if self._stop:
                    return
                frame, self._pending = self._pending, None
                save_now, self._save_soon = self._save_soon, False
            if save_now:
                self.save()
            if frame is None:
                continue
            try:
                self._analyse(frame.display)
                conf, und = self.map.report()
                with self._known_lock:      # a mark made while the report ran is kept
                    self._confirmed = _with_known(conf, self.map.known)
                self._undecided = len(und)
                if time.monotonic() - self._last_save >= self.save_interval_s:
                    self.save()
            except Exception as exc:   # never take the loop down over a map
                self.errors += 1
                log.error("defect map: analysis failed: %s", exc)
            # Not kept while waiting for the next one: a frame (colour and grey planes,
            # 1.2 MB at 640x480) the loop has long let go of.
            frame = None

    def mark_known(self, x: int, y: int, known: bool = True) -> dict:
        """Mark a confirmed defect as known (any thread): shown at once, saved by the
        worker (the map's arrays are only ever touched there). KeyError when no
        confirmed defect is at (x, y); ValueError past the limit of known defects."""
        with self._known_lock:
            hit = [d for d in self._confirmed if d["x"] == x and d["y"] == y]
            if not hit:
                raise KeyError((x, y))
            self.map.set_known(x, y, known)
            self._confirmed = _with_known(self._confirmed, self.map.known)
        with self._cond:
            self._save_soon = True
            self._cond.notify()
        return dict(hit[0], known=known)

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
                            "undecided": self._undecided,
                            "tracked": self.map.tracked, "map_file": str(self.map_file) if self.map_file else None,
                            "method": "net" if self.detector is not None else "classic",
                            "list": self._confirmed[:100]}}

    def reconfigure(self, cfg) -> None:
        d = cfg.defects
        self.every_n = d.every_n_frames
        self.save_interval_s = d.save_interval_s
        self.map.threshold, self.map.spread_gain = d.threshold, d.spread_gain
        self.map.min_hits, self.map.scene_change = d.min_hits, d.scene_change

    def _close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(10)
        self.save()


def _with_known(defects: list, known: frozenset) -> list:
    return [d if d.get("known") == ((d["x"], d["y"]) in known)
            else dict(d, known=(d["x"], d["y"]) in known) for d in defects]
