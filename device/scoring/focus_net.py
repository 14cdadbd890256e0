"""The focus net on a grey frame: "is this sharp?" for an unknown scene, plus a heat map.

Classic measures rank frames of one scene; they cannot say "sharp" about a scene they
have never seen. The tiling and pooling live in ``device.scoring.pooling`` (shared with
training's real-photo checks).

``FocusScorer.analyse(grey, roi)`` returns a ``CnnVerdict``; ``CnnScorer`` wraps the
classic scorer for the live loop so each result carries both.
"""
from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from typing import Optional, Sequence

import numpy as np

from device.common.preprocess import FOCUS_CLASSES, FOCUS_TILE
from device.loop.result import CnnVerdict, FrameResult
from device.scoring.inference import TFLiteModel, check_classes, check_input, map_outputs, open_model
from device.config.verdict import VerdictConfig
from device.scoring.pooling import FocusNetOptions, judge
from device.scoring.verdict import FocusCurve, fuse

log = logging.getLogger(__name__)

# The live loop scores at most this many tiles per frame (the frame-time budget); a
# still given to ``score`` gets every textured tile.
LIVE_MAX_TILES = 16


class FocusScorer:
    """Built once (the interpreter inside is reused for every frame)."""

    def __init__(self, model: TFLiteModel, meta: Optional[dict] = None,
                 options: FocusNetOptions = FocusNetOptions()):
        check_input(model, (FOCUS_TILE, FOCUS_TILE, 1), "focus")
        self.outputs = map_outputs(model, {"probs": (len(FOCUS_CLASSES),), "blur_px": (1,)}, meta)
        check_classes(model, meta, FOCUS_CLASSES, "classes")
        self.model = model
        self.meta = meta or {}
        self.opts = options

    @classmethod
    def from_path(cls, path=None, num_threads: Optional[int] = None,
                  options: FocusNetOptions = FocusNetOptions()) -> "FocusScorer":
        return cls(*open_model("focus", path, num_threads), options)

    @classmethod
    def from_config(cls, cfg, model_path=None,
                    options: FocusNetOptions = FocusNetOptions()) -> "FocusScorer":
        m = cfg.models
        return cls.from_path(model_path or m.focus, m.num_threads, options)

    def predict(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised tiles -> (class probabilities, blur px) from the interpreter."""
        res = self.model.run(tiles)
        return res[self.outputs["probs"]], res[self.outputs["blur_px"]][:, 0]

    def analyse(self, grey: np.ndarray, roi: Optional[Sequence[int]] = None) -> CnnVerdict:
        """The verdict for one grey frame; ``roi`` (x, y, w, h) in ``grey``'s pixels."""
        return judge(grey, roi, self.predict, self.opts)


class _Worker:
    """The focus net on its own thread, always on the newest frame handed to it (older
    ones waiting are dropped, as the live defect map does)."""

    def __init__(self, focus: FocusScorer):
        self.focus = focus
        # A C-level queue: handing a frame over costs the frame thread a microsecond
        # (a Condition's notify cost it ~30 us). The worker drains it to the newest.
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.latest: Optional[CnnVerdict] = None
        self.judged = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="focus-net", daemon=True)
        self._thread.start()

    def submit(self, grey: np.ndarray, roi, index: int) -> None:
        self._inbox.put((grey, roi, index))

    def _run(self) -> None:
        while True:
            item = self._inbox.get()
            while item is not None:
                try:                    # older frames waiting are dropped: the newest wins
                    newer = self._inbox.get_nowait()
                except queue.Empty:
                    break
                item = newer
            if item is None:            # close(): the stop mark is always the last item
                return
            grey, roi, index = item
            try:
                verdict = dataclasses.replace(self.focus.analyse(grey, roi), frame=index)
            except Exception as exc:    # a bad frame must not end the verdicts for good
                self.errors += 1
                if self.errors <= 3:
                    log.error("focus net: frame %d failed: %s", index, exc)
                continue
            self.latest = verdict
            self.judged += 1

    def close(self) -> None:
        self._inbox.put(None)
        self._thread.join(5.0)


class CnnScorer:
    """The live-loop scorer: classic measures and tile map, the focus net's verdict, and
    (unless ``verdict`` is None) that verdict fused with the region's focus curve
    (``device.scoring.verdict``).

    ``background=True`` runs the net on its own thread (``models.focus_thread``): the frame
    thread then pays only for the classic measures, and each result carries the newest
    verdict (``cnn.frame`` says which frame it judged). The first frame is judged on the
    frame thread, so every result has a verdict from the start.
    """

    def __init__(self, classic, focus: FocusScorer, verdict: Optional[VerdictConfig] = VerdictConfig(),
                 background: bool = False):
        self.classic = classic
        self.focus = focus
        self._worker = _Worker(focus) if background else None
        self.verdict_cfg = verdict
        self.curve = FocusCurve(verdict) if verdict is not None else None

    @property
    def roi(self):
        return self.classic.roi

    @property
    def background(self) -> bool:
        return self._worker is not None

    def set_roi(self, roi) -> None:
        self.classic.set_roi(roi)
        if self.curve is not None:
            self.curve.reset()            # another region: another curve

    def score(self, frame) -> FrameResult:
        result = self.classic.score(frame)
        result.cnn = self._net_verdict(frame, result)
        if self.curve is not None:
            evidence = self.curve.update(result.focus, result.timestamp)
            result.verdict = fuse(result.cnn, evidence, self.verdict_cfg)
        return result

    def _net_verdict(self, frame, result: FrameResult) -> CnnVerdict:
        worker = self._worker
        if worker is None or worker.latest is None:
            cnn = dataclasses.replace(self.focus.analyse(frame.grey, result.roi), frame=frame.index)
            if worker is not None:
                worker.latest = cnn
            return cnn
        worker.submit(frame.grey, result.roi, frame.index)
        return worker.latest

    def close(self) -> None:
        """Stop the worker thread (idempotent; nothing to do without one)."""
        if self._worker is not None:
            self._worker.close()


def scorer_from_config(cfg, classic, model_path=None, live: bool = False):
    """The loop's scorer: ``classic`` wrapped with the focus net unless it is disabled.
    ``live``: the source is a camera (``models.focus_thread = "auto"`` then runs the net
    on its own thread)."""
    if not cfg.models.enable_focus:
        return classic
    focus = FocusScorer.from_config(cfg, model_path, FocusNetOptions(max_tiles=LIVE_MAX_TILES))
    where = cfg.models.focus_thread
    background = where == "worker" or (where == "auto" and live)
    log.info("focus net: %s (%s, %d threads, %d bytes, %s)", focus.model.path,
             focus.meta.get("model_version", "no metadata"), focus.model.num_threads,
             focus.model.size_bytes, "own thread" if background else "frame thread")
    return CnnScorer(classic, focus, cfg.verdict if cfg.verdict.enabled else None, background=background)


def image_verdict_fn(cfg=None, model_path=None):
    """For ``focus-assist score``: ``fn(img, grey, roi) -> dict`` of the CNN fields.

    None when the focus net is disabled in the config. The JSON gets ``label``,
    ``sharp_prob``, ``probs`` ({"sharp", "defocus", "motion"}), ``blur_px`` and
    ``certainty`` (the heat map stays out of the per-image JSON).
    """
    if cfg is None:
        from device.config import load_config
        cfg = load_config()
    if not cfg.models.enable_focus and model_path is None:
        return None
    focus = FocusScorer.from_config(cfg, model_path)

    def verdict(img, grey, roi):
        return focus.analyse(grey, roi).to_json(with_map=False)
    return verdict
