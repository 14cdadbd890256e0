"""What the scorer says about one frame, as the sinks read it.

``FrameResult`` is produced by the scorer and read by every sink (frame log, overlay,
capture, autofocus, web viewfinder, service status). The defect map, which runs first
among the sinks, attaches its confirmed list as ``defects``; nothing else writes to it.

``to_json`` is the one place the frame log, ``score`` and ``/api/status`` get their keys
from. The keys are a public contract (README, "Command line"): add keys, never rename.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from device.common.roi import Roi


@dataclass(frozen=True)
class CnnVerdict:
    """The focus net's verdict on a frame (or its ROI), pooled from tiles."""
    label: str                        # "sharp" | "defocus" | "motion" | "flat"
    sharp_prob: float
    probs: dict                       # class -> pooled probability
    blur_px: Optional[float]          # in the input image's pixels; None when flat
    certainty: float                  # mean 1 - H(p)/log K of the pooled tiles
    tiles: int                        # tiles the net scored
    tile_map: Optional[np.ndarray] = field(default=None, compare=False)  # p(sharp) per tile, -1 unscored
    # The index of the frame the net judged: with the net on its own thread
    # (``models.focus_thread``) a result carries the newest verdict, which may be older.
    frame: Optional[int] = field(default=None, compare=False)

    def to_json(self, with_map: bool = True) -> dict:
        out = {"label": self.label, "sharp_prob": self.sharp_prob, "probs": dict(self.probs),
               "blur_px": self.blur_px, "certainty": self.certainty, "cnn_tiles": self.tiles}
        if self.frame is not None:
            out["cnn_frame"] = self.frame
        if with_map:
            out["cnn_map"] = self.tile_map
        return out


@dataclass(frozen=True)
class Verdict:
    """The live loop's sharpness verdict: the net and the focus curve of the current pass
    together (``device.scoring.verdict``). ``decided_by`` is ``net``, ``curve``,
    ``net_and_curve``, ``net_unsure`` (the net's own answer, no evidence outweighs it)
    or ``no_detail``."""
    label: str                        # "sharp" | "defocus" | "motion" | "flat"
    sharp_prob: float
    decided_by: str
    net_weight: float
    curve_weight: float
    curve_ratio: Optional[float]      # the ROI's focus value / the recent curve's top

    def to_json(self) -> dict:
        return {"label": self.label, "sharp_prob": round(self.sharp_prob, 4),
                "verdict_by": self.decided_by, "net_weight": self.net_weight,
                "curve_weight": self.curve_weight, "curve_ratio": self.curve_ratio}


@dataclass(frozen=True)
class WorkingImage:
    """The classic scorer's working image and per-pixel gradient energy, computed once per
    frame and reused by focus peaking (the same pyramid step and Sobel kernels), so the
    frame is reduced and differentiated once. Only set when the working image is at the
    frame's own scale (a lores-sized frame), which is the scale peaking works at."""
    work: np.ndarray        # the grey frame reduced by one pyramid level, float32
    energy: np.ndarray      # gx^2 + gy^2 of ``work``'s 3x3 Sobel derivatives, float32


@dataclass
class FrameResult:
    frame: int                        # the frame's index in its source
    timestamp: float
    focus: float                      # normalised Tenengrad of the ROI (or whole frame)
    measures: dict                    # the four classic measures
    tile_map: np.ndarray              # (rows, cols) classic focus per tile
    roi: Optional[Roi] = None         # (x, y, w, h) in frame pixels, checked against the frame
    cnn: Optional[CnnVerdict] = None
    defects: Optional[list] = None    # confirmed defects, attached by the live defect map
    verdict: Optional[Verdict] = None # the net and the focus curve together (live loop)
    working: Optional[WorkingImage] = field(default=None, repr=False, compare=False)

    @property
    def sharp_prob(self) -> Optional[float]:
        """The reported p(sharp): the fused verdict's where there is one, else the net's."""
        if self.verdict is not None:
            return self.verdict.sharp_prob
        return self.cnn.sharp_prob if self.cnn is not None else None

    @property
    def label(self) -> Optional[str]:
        if self.verdict is not None:
            return self.verdict.label
        return self.cnn.label if self.cnn is not None else None

    @property
    def blur_px(self) -> Optional[float]:
        return self.cnn.blur_px if self.cnn is not None else None

    def scores(self) -> dict:
        """The scores alone (capture sidecars): focus, measures, tile map, the CNN's fields."""
        out = {"focus": self.focus, "measures": dict(self.measures), "tile_map": self.tile_map}
        if self.cnn is not None:
            out.update(self.cnn.to_json(with_map=False))
        self._add_verdict(out)
        return out

    def _add_verdict(self, out: dict) -> None:
        """``label``/``sharp_prob`` become the fused verdict's; the net's own answer stays
        as ``net_label``/``net_sharp_prob``."""
        if self.verdict is None:
            return
        if self.cnn is not None:
            out["net_label"], out["net_sharp_prob"] = self.cnn.label, self.cnn.sharp_prob
        out.update(self.verdict.to_json())

    def to_json(self) -> dict:
        """The frame-log record (one JSON line per frame); arrays stay arrays until
        ``device.common.jsonio.to_jsonable`` writes them."""
        out = {"frame": self.frame, "timestamp": self.timestamp, "focus": self.focus,
               "measures": dict(self.measures), "tile_map": self.tile_map,
               "roi": list(self.roi) if self.roi else None}
        if self.cnn is not None:
            out.update(self.cnn.to_json())
        self._add_verdict(out)
        if self.defects is not None:
            out["defects"] = self.defects
        return out
