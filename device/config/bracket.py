"""``[bracket]``: focus bracketing for focus stacking (``device.optics.bracket``)."""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Optional

from device.errors import ConfigError

BracketFrom = typing.Literal["focus", "here"]
BRACKET_FROM: tuple[str, ...] = typing.get_args(BracketFrom)


@dataclass(frozen=True)
class BracketConfig:
    frames: int = 0                 # 0: no bracket; N: N captures centred on focus
    step: Optional[int] = None      # motor steps between captures; None: from the focus curve
    start: BracketFrom = "focus"    # focus: autofocus first; here: centre on where the lens is
    settle_frames: int = 2          # frames dropped after each move before the capture

    def __post_init__(self):
        if self.frames < 0 or self.frames == 1 or self.frames > 999:
            raise ConfigError("bracket.frames must be 0 (off) or 2..999")
        if self.step is not None and self.step < 1:
            raise ConfigError("bracket.step must be >= 1 motor step")
        if self.settle_frames < 0:
            raise ConfigError("bracket.settle_frames must be >= 0")
