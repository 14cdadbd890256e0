"""Config section ``[verdict]``: how the live loop's sharpness verdict weighs the focus
net against the focus curve of the current pass (see ``device.scoring.verdict``)."""
from __future__ import annotations

from dataclasses import dataclass

from device.errors import ConfigError


@dataclass(frozen=True)
class VerdictConfig:
    """The curve's side of the verdict. Ratios are the ROI's focus value over the highest
    value of the recent curve; weights are in units of a fully certain net."""
    enabled: bool = True            # false: the net alone decides, as before the fusion
    window_s: float = 20.0          # the curve the verdict looks back over
    window_frames: int = 600        # ... and at most this many frames of it
    sharp_ratio: float = 0.4        # p(sharp) from the curve is 0.5 here (fitted, see docs)
    ratio_scale: float = 0.08       # ... and this wide a logistic step
    strong_rise: float = 4.0        # a curve that rose this many times carries full weight
    fall_ratio: float = 0.8         # the pass has gone over its top once it fell below this
    curve_weight: float = 2.0       # a full-weight curve outvotes a fully certain net
    unsure_below: float = 0.3       # net certainty below this counts as "I don't know"

    def __post_init__(self):
        if self.window_s <= 0 or self.window_frames < 3:
            raise ConfigError("verdict.window_s must be > 0 and verdict.window_frames >= 3")
        if not 0 < self.sharp_ratio < 1 or self.ratio_scale <= 0:
            raise ConfigError("verdict.sharp_ratio must lie in (0, 1) and verdict.ratio_scale be > 0")
        if self.strong_rise <= 1:
            raise ConfigError("verdict.strong_rise must be > 1")
        if not 0 < self.fall_ratio < 1:
            raise ConfigError("verdict.fall_ratio must lie in (0, 1)")
        if self.curve_weight < 0 or not 0 <= self.unsure_below <= 1:
            raise ConfigError("verdict.curve_weight must be >= 0 and verdict.unsure_below lie in 0..1")
