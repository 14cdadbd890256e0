"""The region of interest: one type, one parser (config and command line), one check
against a frame (scorer, web viewfinder, video report)."""
from __future__ import annotations

from typing import Optional, Sequence

from device.errors import ConfigError, InputError

Roi = tuple[int, int, int, int]     # (x, y, w, h) in frame pixels


def parse_roi(text: str | Sequence[int] | None) -> Optional[Roi]:
    """``"X,Y,W,H"`` or a 4-sequence -> ``(x, y, w, h)``; raises ``ConfigError`` if malformed."""
    if text is None:
        return None
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
    else:
        parts = list(text)
    try:
        vals = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"ROI must be four integers X,Y,W,H, got {text!r}") from None
    if len(vals) != 4:
        raise ConfigError(f"ROI must be four integers X,Y,W,H, got {text!r}")
    x, y, w, h = vals
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ConfigError(f"ROI {text!r}: x and y must be >= 0 and width and height > 0")
    return vals  # type: ignore[return-value]


def check_roi(roi: Optional[Sequence[int]], shape: tuple[int, ...]) -> Optional[Roi]:
    """Validate an ROI against a frame shape; raises InputError naming the problem."""
    if roi is None:
        return None
    x, y, w, h = (int(v) for v in roi)
    height, width = shape[:2]
    if w <= 0 or h <= 0:
        raise InputError(f"ROI {x},{y},{w},{h} is empty")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise InputError(f"ROI {x},{y},{w},{h} lies outside the {width}x{height} image")
    return (x, y, w, h)
