"""Frame -> ``FrameResult``. The classic scorer here; the CNN scorer wraps it
(``device.scoring.focus_net``) and adds its verdict as ``result.cnn``."""
from __future__ import annotations

from typing import Optional, Protocol

from device.config import ScoringConfig
from device.common.roi import check_roi
from device.scoring.measures import score_frame
from device.loop.result import FrameResult, WorkingImage
from device.sources.base import Frame


class Scorer(Protocol):
    def score(self, frame: Frame) -> FrameResult: ...

    def set_roi(self, roi: Optional[tuple[int, int, int, int]]) -> None: ...

    def close(self) -> None: ...


class ClassicScorer:
    """The classic measures of the ROI plus the tile focus map."""

    def __init__(self, cfg: ScoringConfig = ScoringConfig()):
        self.roi = cfg.roi
        self.grid = cfg.tile_grid

    def set_roi(self, roi: Optional[tuple[int, int, int, int]]) -> None:
        self.roi = roi

    def score(self, frame: Frame) -> FrameResult:
        roi = self.roi
        if roi is not None:
            roi = check_roi(roi, frame.grey.shape)
        m = score_frame(frame.grey, roi, self.grid)
        shared = WorkingImage(m.work, m.energy) if m.work is not None else None
        return FrameResult(frame=frame.index, timestamp=frame.timestamp, focus=m.focus,
                           measures=m.measures, tile_map=m.tile_map, roi=roi, working=shared)

    def close(self) -> None:
        """Nothing to release (the CNN scorer has a thread to stop)."""

