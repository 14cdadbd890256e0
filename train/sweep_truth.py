"""Where regions of the real focus sweeps in the shared data folder are sharp and where they are
blurred, judged by eye: the one statement of that truth, for the training report
(``focus-train evaluate``), the benchmarks and the tests alike. Pure data: no TensorFlow,
no pytest, so the device's tests on the Pi's stack can read it too."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SweepTruth:
    """One judged region of a real sweep: its ROI, its sharpest frame, the frames judged
    acceptably sharp and the frames judged clearly blurred."""
    name: str
    roi: tuple[int, int, int, int]      # (x, y, w, h) in the full-size frames
    best: int                           # frame index judged sharpest
    good: frozenset                     # frames judged acceptably sharp
    sweep: str = "pcb_focus_sweep"      # the folder of ../shared/data it belongs to
    blurred: frozenset = frozenset()    # frames judged clearly blurred in the region

    @property
    def roi_text(self) -> str:
        return ",".join(map(str, self.roi))


# The one statement of the PCB sweep's truth, used by every test that checks it.
SWITCH_TOP = SweepTruth("top of the tactile switch", (750, 500, 550, 500), 6, frozenset({5, 6, 7}),
                        blurred=frozenset({0, 1, 9}))
BOARD_TEXT = SweepTruth('board text "SW1"', (700, 150, 500, 250), 3, frozenset({2, 3, 4}),
                        blurred=frozenset({7, 8, 9}))
PCB_SWEEP_TRUTH = (SWITCH_TOP, BOARD_TEXT)

# ../shared/data/focus_sweeps/pi_board_macro (49 frames, 1920x1080): the heatsink with the
# silkscreen beside it, in the top half-frame (rows < 540). Sharpest at 23 by eye; the
# classic curve agrees (21-25 within 10% of its top).
HEATSINK_TOP = SweepTruth("pi board heatsink, top half", (480, 80, 960, 400), 23,
                          frozenset({21, 22, 23, 24, 25}), "focus_sweeps/pi_board_macro",
                          blurred=frozenset(range(0, 11)) | frozenset(range(35, 49)))
# ../shared/data/focus_sweeps/usb_dongle_macro (31 frames): the printed "CMIIT ID" text in
# the bottom half-frame. Sharp at 15 (14-16). Frames 10, 20 and 24 do not follow the lens
# order (their curve values jump); by eye they are blurred here, like 0-7 and 22-30.
USB_TEXT = SweepTruth("usb dongle text, bottom half", (80, 600, 800, 420), 15,
                      frozenset({14, 15, 16}), "focus_sweeps/usb_dongle_macro",
                      blurred=frozenset(range(0, 8)) | {10, 20} | frozenset(range(22, 31)))

# Every judged region of the real sweeps (the real-sweep benchmark reads these).
REAL_SWEEP_REGIONS = (SWITCH_TOP, BOARD_TEXT, HEATSINK_TOP, USB_TEXT)
