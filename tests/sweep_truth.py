"""Where regions of ../shared/data/pcb_focus_sweep are sharpest, judged by eye: the one
statement of that truth, for the tests and the benchmarks alike (no pytest here)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SweepTruth:
    """Where a region of ../shared/data/pcb_focus_sweep is sharpest, judged by eye."""
    name: str
    roi: tuple[int, int, int, int]      # (x, y, w, h) in the 10 full-size frames
    best: int                           # frame index judged sharpest
    good: frozenset                     # frames judged acceptably sharp

    @property
    def roi_text(self) -> str:
        return ",".join(map(str, self.roi))


# The one statement of the PCB sweep's truth, used by every test that checks it.
SWITCH_TOP = SweepTruth("top of the tactile switch", (750, 500, 550, 500), 6, frozenset({5, 6, 7}))
BOARD_TEXT = SweepTruth('board text "SW1"', (700, 150, 500, 250), 3, frozenset({2, 3, 4}))
PCB_SWEEP_TRUTH = (SWITCH_TOP, BOARD_TEXT)
