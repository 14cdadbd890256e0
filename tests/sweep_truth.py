"""The judged truth of the real sweeps lives in ``train/sweep_truth.py`` (the training
report reads it too); tests and benchmarks import it from here by its old name."""
from train.sweep_truth import (BOARD_TEXT, HEATSINK_TOP, PCB_SWEEP_TRUTH, REAL_SWEEP_REGIONS,
                               SWITCH_TOP, USB_TEXT, SweepTruth)

__all__ = ["BOARD_TEXT", "HEATSINK_TOP", "PCB_SWEEP_TRUTH", "REAL_SWEEP_REGIONS", "SWITCH_TOP",
           "USB_TEXT", "SweepTruth"]
