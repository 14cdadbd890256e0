"""``[inspect]``: the live optics inspector (``device.optics.live``): after a full
autofocus scan, or a pass through focus by hand, the viewfinder runs the same analysis as
``focus-assist inspect`` on the tile maps it already has."""
from __future__ import annotations

from dataclasses import dataclass

from device.errors import ConfigError


@dataclass(frozen=True)
class InspectConfig:
    enabled: bool = False           # analyse every pass as it ends (else on POST /api/inspect)
    grid: tuple[int, int] = (3, 3)  # rows, cols of the best-focus map (<= scoring.tile_grid)
    min_frames: int = 8             # a shorter pass is not analysed
    max_frames: int = 600           # frames kept for one pass (a slow hand at 30 fps: 20 s)
    after_autofocus: bool = True    # a full autofocus scan is a pass
    by_hand: bool = True            # so is the ring turned through focus by hand

    def __post_init__(self):
        r, c = self.grid
        if not (1 <= r <= 16 and 1 <= c <= 16) or r * c < 3:
            raise ConfigError("inspect.grid must be [rows, cols], each 1..16, at least 3 regions")
        if self.min_frames < 3:
            raise ConfigError("inspect.min_frames must be >= 3")
        if not self.min_frames <= self.max_frames <= 100_000:
            raise ConfigError("inspect.max_frames must lie in min_frames..100000")
