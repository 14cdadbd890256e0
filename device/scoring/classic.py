"""Frame -> result dict. The classic scorer here; the CNN scorer wraps it (device.scoring.focus_net).

A result is a plain dict so every sink (log, overlay, capture, autofocus, web) reads the
same thing: ``frame``, ``timestamp``, ``focus``, ``measures``, ``tile_map`` (ndarray),
``roi`` and, with the CNN, ``label``, ``sharp_prob``, ``probs``, ``blur_px``.
"""
from __future__ import annotations

from typing import Optional, Protocol

from device.config import ScoringConfig
from device.scoring.measures import check_roi, score_frame
from device.sources.base import Frame


class Scorer(Protocol):
    def score(self, frame: Frame) -> dict: ...


class ClassicScorer:
    """The classic measures of the ROI plus the tile focus map."""

    def __init__(self, cfg: ScoringConfig = ScoringConfig()):
        self.roi = cfg.roi
        self.grid = cfg.tile_grid

    def set_roi(self, roi: Optional[tuple[int, int, int, int]]) -> None:
        self.roi = roi

    def score(self, frame: Frame) -> dict:
        roi = self.roi
        if roi is not None:
            roi = check_roi(roi, frame.grey.shape)
        m = score_frame(frame.grey, roi, self.grid)
        return {
            "frame": frame.index,
            "timestamp": frame.timestamp,
            "focus": m.focus,
            "measures": m.measures,
            "tile_map": m.tile_map,
            "roi": list(roi) if roi else None,
        }


def jsonable(result: dict) -> dict:
    """A copy of a result that ``json.dumps`` accepts (arrays become rounded lists)."""
    import numpy as np

    out = {}
    for k, v in result.items():
        if isinstance(v, np.ndarray):
            out[k] = np.round(v.astype(float), 4).tolist()
        elif isinstance(v, (np.floating, np.integer)):
            out[k] = v.item()
        elif isinstance(v, dict):
            out[k] = jsonable(v)
        else:
            out[k] = v
    return out
