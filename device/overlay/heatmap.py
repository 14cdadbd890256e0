"""The tile heat map: classic tile focus against its running peak, or the CNN's p(sharp)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from device.overlay.paint import _paint
from device.overlay.running import RunningPeak


@lru_cache(maxsize=2)
def heat_lut(rgba: bool) -> np.ndarray:
    """256-entry colour map, cold blue to hot red (built once)."""
    cmap = getattr(cv2, "COLORMAP_TURBO", cv2.COLORMAP_JET)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(-1, 1), cmap).reshape(256, 3)
    return np.ascontiguousarray(lut[:, ::-1]) if rgba else lut


def heat_values(tiles: Optional[np.ndarray], cnn: Optional[np.ndarray], level: RunningPeak,
                t: float, source: str = "auto") -> Optional[np.ndarray]:
    """Per-tile values in 0..1: the CNN's sharp probability (``cnn``, -1 = unscored, shown
    cold) if wanted and present, else the classic tile focus ``tiles`` relative to its
    running peak (so a blurred frame stays cold)."""
    if source in ("auto", "cnn") and cnn is not None:
        return np.clip(np.asarray(cnn, dtype=np.float32), 0.0, 1.0)
    if tiles is None or source == "cnn":
        return None
    tiles = np.asarray(tiles, dtype=np.float32)
    if tiles.size == 0:
        return None
    finite = np.isfinite(tiles)
    if not finite.all():          # a broken tile shows cold (np.nan_to_num is slow)
        tiles = np.where(finite, tiles, np.float32(0.0))
    top = level.update(float(tiles.max()), t)
    if top <= 0:
        return np.zeros_like(tiles)
    v = tiles / np.float32(top)
    return np.clip(v, 0.0, 1.0, out=v)


HEAT_LEVELS = 32   # colour steps: no visible banding; a steady scene keeps its heat image


def heat_levels(values: np.ndarray) -> np.ndarray:
    """Tile values (0..1) -> colour-map indices, quantised to ``HEAT_LEVELS`` steps."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    q = np.round(v * (HEAT_LEVELS - 1)) * (255.0 / (HEAT_LEVELS - 1))
    return np.ascontiguousarray(q.astype(np.uint8).reshape(v.shape[0], -1))


def _edges(n: int, size: int) -> np.ndarray:
    return (np.arange(n + 1) * size) // n


GRID_BGR = (40, 40, 40)


@lru_cache(maxsize=8)
def _heat_geometry(rows: int, cols: int, h: int, w: int):
    """Tile row edges, tile widths, the grid's columns, and which strip (or ``rows``: a
    grid line) each image row shows."""
    ye, xe = _edges(rows, h), _edges(cols, w)
    kind = np.repeat(np.arange(rows), np.diff(ye))
    kind[ye[1:-1]] = rows
    geometry = (ye, np.diff(xe), xe[1:-1], kind)
    for a in geometry:
        a.flags.writeable = False        # shared by every caller of the cache
    return geometry


class HeatRows:
    """The heat image of some tile levels (BGR, or RGBA with alpha ``a8``), stored as its
    distinct rows: one per tile row (tile colours, grid columns) plus the grid-line row.
    Filling an image copies whole rows (numpy broadcasting a 3- or 4-byte colour into
    each tile, or resizing, is far slower), and restoring a few boxes needs no full-size
    image."""

    def __init__(self, levels: np.ndarray, h: int, w: int, rgba: bool = True, a8: int = 255):
        rows, cols = levels.shape
        self.edges, widths, grid_x, self.kind = _heat_geometry(rows, cols, h, w)
        grid = _paint(GRID_BGR, rgba, 160)
        small = heat_lut(rgba)[levels]
        if rgba:
            small = np.concatenate([small, np.full((rows, cols, 1), a8, np.uint8)], axis=2)
        self.patterns = np.empty((rows + 1, w, len(grid)), np.uint8)
        self.patterns[:rows] = np.repeat(small, widths, axis=1)
        self.patterns[:rows, grid_x] = grid
        self.patterns[rows] = grid
        self.w = w

    def fill(self, out: np.ndarray, rows: Optional[Sequence[int]] = None) -> np.ndarray:
        """Write the image into ``out``: every tile row, or only the bands of ``rows``."""
        n = len(self.edges) - 1
        for r in range(n) if rows is None else rows:
            y0, y1 = self.edges[r], self.edges[r + 1]
            if y0 < y1:
                out[y0:y1] = self.patterns[r]
                if r:
                    out[y0] = self.patterns[n]     # the grid line on top of the band
        return out

    def restore_box(self, out: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
        out[y0:y1, x0:x1] = self.patterns[self.kind[y0:y1], x0:x1]

    def restore_pixels(self, flat32: np.ndarray, idx: np.ndarray) -> None:
        """Restore RGBA pixels given as flat indices into the layer viewed as uint32."""
        ys, xs = np.divmod(idx, self.w)
        flat32[idx] = self.patterns.view(np.uint32)[self.kind[ys], xs, 0]


class _HeatImages:
    """Full-size BGR heat images, kept for levels seen on two frames running.

    A steady scene then blends in one pass over a cached image. During a focus pull the
    levels change every frame, and building a full image that is never reused costs more
    than blending band by band from the tile rows (a band stays in the CPU cache). The
    images are never refilled, so threads drawing at once may share them."""

    def __init__(self, size: int = 2):
        self._items: OrderedDict = OrderedDict()
        self._last = None
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple, heat: Callable[[], HeatRows]) -> Optional[np.ndarray]:
        """The image for ``key`` if kept or seen last time (then built from ``heat()``)."""
        with self._lock:
            img = self._items.get(key)
            if img is not None:
                self._items.move_to_end(key)
                return img
            seen, self._last = self._last == key, key
        if not seen:
            return None
        h, w = key[2], key[3]
        img = heat().fill(np.empty((h, w, 3), np.uint8))
        img.flags.writeable = False
        with self._lock:
            self._items[key] = img
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return img


_HEAT_IMAGES = _HeatImages()


def blend_heat(canvas: np.ndarray, levels: np.ndarray, alpha: float,
               dst: Optional[np.ndarray] = None) -> np.ndarray:
    """``canvas * (1 - alpha) + heat * alpha`` (BGR) into ``dst`` (``canvas`` itself for
    in place), or into a new array when ``dst`` is None."""
    h, w = canvas.shape[:2]
    big = _HEAT_IMAGES.get((levels.tobytes(), levels.shape, h, w),
                           lambda: HeatRows(levels, h, w, rgba=False))
    if big is not None:
        return cv2.addWeighted(canvas, 1.0 - alpha, big, alpha, 0.0, dst=dst)
    heat = HeatRows(levels, h, w, rgba=False)
    out = np.empty_like(canvas) if dst is None else dst
    ye = heat.edges
    band = np.empty((int(np.diff(ye).max()), w, 3), np.uint8)
    for r in range(len(ye) - 1):
        y0, y1 = int(ye[r]), int(ye[r + 1])
        if y0 == y1:
            continue
        b = band[:y1 - y0]
        b[:] = heat.patterns[r]
        if r:
            b[0] = heat.patterns[-1]          # the grid line on top of the band
        cv2.addWeighted(canvas[y0:y1], 1.0 - alpha, b, alpha, 0.0, dst=out[y0:y1])
    return out


def draw_heatmap(canvas: np.ndarray, values: np.ndarray, alpha: float = 0.35,
                 rgba: bool = False) -> None:
    """A translucent grid over the whole canvas coloured by ``values`` (rows x cols, 0..1).

    On an RGBA layer the grid replaces everything below it (it is the bottom layer)."""
    h, w = canvas.shape[:2]
    levels = heat_levels(values)
    if rgba:
        HeatRows(levels, h, w, True, int(round(alpha * 255))).fill(canvas)
    else:
        blend_heat(canvas, levels, alpha, dst=canvas)
