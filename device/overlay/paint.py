"""Shared drawing helpers of the overlay modules."""
from __future__ import annotations

import cv2

ELEMENTS = ("peaking", "heatmap", "hud", "defects", "roi", "zoom", "stars")
NOISE_EVERY = 8          # frames between noise-floor estimates (sensor noise changes slowly)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _paint(colour_bgr, rgba: bool, alpha: int = 255) -> tuple:
    b, g, r = colour_bgr
    return (r, g, b, alpha) if rgba else (b, g, r)
