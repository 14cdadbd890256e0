"""Running values the overlay keeps between frames: decaying peaks and the peak hold."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class RunningPeak:
    """A maximum that decays with a half-life, so a new scene takes over in seconds."""
    half_life_s: float = 8.0
    value: float = 0.0
    t: Optional[float] = None

    def update(self, x: float, t: float) -> float:
        if self.t is not None and self.half_life_s > 0:
            dt = max(0.0, t - self.t)
            self.value *= 0.5 ** (dt / self.half_life_s)
        self.t = t
        self.value = max(self.value, float(x))
        return self.value

    def reset(self) -> None:
        self.value, self.t = 0.0, None


@dataclass
class PeakHold:
    """The best focus value since the last reset: turning a manual ring, the user sees the
    bar fall away from the held mark once they have passed the peak."""
    value: float = 0.0
    peak: float = 0.0

    def update(self, x: float) -> None:
        self.value = float(x)
        if math.isfinite(self.value) and self.value > self.peak:
            self.peak = self.value

    def reset(self) -> None:
        self.peak = self.value = 0.0

    @property
    def ratio(self) -> float:
        return self.value / self.peak if self.peak > 0 else 0.0


@dataclass
class PeakingState:
    """What the peaking threshold remembers between frames."""
    level: RunningPeak = field(default_factory=RunningPeak)
    noise: float = 0.0
    frames: int = 0


@dataclass(frozen=True)
class PeakingParams:
    share: float = 0.005      # fraction of pixels highlighted in a sharp frame
    floor: float = 0.7        # share of the running peak edge strength below which nothing shows
    noise_k: float = 8.0      # multiples of the noise estimate below which nothing shows
