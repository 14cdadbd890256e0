"""Frame results as the scorer would hand them to the sinks, for tests of one sink alone."""
from __future__ import annotations

from typing import Optional

import numpy as np

from device.loop.result import CnnVerdict, FrameResult


def verdict(sharp_prob: float, *, label: Optional[str] = None, blur_px: Optional[float] = 0.5,
            certainty: float = 0.8, tile_map: Optional[np.ndarray] = None) -> CnnVerdict:
    """A focus-net verdict with p(sharp) ``sharp_prob`` (label from it unless given)."""
    rest = 1.0 - sharp_prob
    return CnnVerdict(label=label or ("sharp" if sharp_prob >= 0.5 else "defocus"),
                      sharp_prob=sharp_prob,
                      probs={"sharp": sharp_prob, "defocus": rest, "motion": 0.0},
                      blur_px=blur_px, certainty=certainty, tiles=1 if tile_map is None else int(tile_map.size),
                      tile_map=tile_map)


def result(focus: float = 1.0, *, frame: int = 0, timestamp: float = 0.0,
           tile_map: Optional[np.ndarray] = None, roi=None, cnn: Optional[CnnVerdict] = None,
           defects: Optional[list] = None) -> FrameResult:
    """A scored frame whose classic focus value is ``focus`` (tile map flat at it unless given)."""
    if tile_map is None:
        tile_map = np.full((2, 2), float(focus), np.float32)
    return FrameResult(frame=frame, timestamp=timestamp, focus=focus,
                       measures={"tenengrad": focus}, tile_map=tile_map,
                       roi=tuple(roi) if roi is not None else None, cnn=cnn, defects=defects)
