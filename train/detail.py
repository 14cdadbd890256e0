"""How fine a tile's structure is, whatever its contrast: the one measure that decides
which tiles of a photograph or a sweep are focus examples (``train.data``,
``train.sweep_labels``)."""
from __future__ import annotations

import cv2
import numpy as np


def tile_detail(tiles: np.ndarray) -> np.ndarray:
    """Per-tile detail, ``(N,)``: mean squared Sobel gradient over the tile's variance
    (plus a noise floor), i.e. how fine the tile's structure is whatever its contrast.
    Blur lowers it; a bokeh or a soft sky has little of it to begin with."""
    out = np.empty(len(tiles), np.float32)
    for i, t in enumerate(tiles):
        f = t.astype(np.float32)
        gx = cv2.Sobel(f, cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(f, cv2.CV_32F, 0, 1)
        out[i] = float((gx * gx + gy * gy).mean() / (f.var() + 25.0))
    return out
