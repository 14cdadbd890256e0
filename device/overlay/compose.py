"""Everything together: the layers of one frame drawn into a BGR picture or an RGBA layer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from device.overlay.heatmap import HeatRows, blend_heat, draw_heatmap, heat_levels
from device.overlay.hud import HudInfo, draw_hud
from device.overlay.marks import draw_defects, draw_roi, draw_stars, draw_zoom, zoom_crop
from device.overlay.peaking import draw_peaking


@dataclass
class Layers:
    """What to draw for one frame, in scored-frame coordinates where it matters."""
    src_shape: tuple                      # the scored frame's (h, w)
    peaking: Optional[np.ndarray] = None  # uint8 mask (any size; scaled to the canvas)
    heat: Optional[np.ndarray] = None     # rows x cols values in 0..1
    roi: Optional[Sequence[int]] = None
    defects: Optional[list] = None
    zoom: bool = False
    hud: Optional[HudInfo] = None
    stars: Optional[Sequence] = None      # star mode: (x, y, radius) circles


@dataclass(frozen=True)
class Style:
    peaking_colour: tuple = (0, 0, 255)
    heatmap_alpha: float = 0.35
    zoom_factor: float = 3.0
    zoom_size: float = 0.35


@dataclass
class Drawn:
    """Where one frame's drawing landed: boxes, peaking pixels, or everywhere."""
    boxes: list = field(default_factory=list)
    pixels: Optional[np.ndarray] = None
    everywhere: bool = False


def draw_all(canvas: np.ndarray, layers: Layers, picture: Optional[np.ndarray] = None,
             style: Style = Style(), rgba: bool = False, heat: bool = True,
             drawn: Optional[Drawn] = None) -> np.ndarray:
    """Draw every present layer onto ``canvas`` in place (heat map under, HUD on top).

    ``picture`` is the clean frame the zoom inset magnifies (BGR, any size); for a BGR
    canvas it defaults to the canvas itself, as it was before anything was drawn.
    ``heat=False`` leaves the heat map out (a persistent layer draws it as background);
    ``drawn`` collects where everything else landed.
    """
    drawn = drawn if drawn is not None else Drawn()
    crop = None
    if layers.zoom:
        src = picture if picture is not None else (None if rgba else canvas)
        if src is not None:
            crop = zoom_crop(src, layers.roi, layers.src_shape, canvas.shape,
                             style.zoom_factor, style.zoom_size)
            if src is canvas:
                crop = crop.copy()         # only the magnified region, before drawing
    if heat and layers.heat is not None:
        draw_heatmap(canvas, layers.heat, style.heatmap_alpha, rgba)
        drawn.everywhere = True
    if layers.peaking is not None:
        drawn.pixels = draw_peaking(canvas, layers.peaking, style.peaking_colour, rgba)
        drawn.everywhere |= drawn.pixels is None
    if layers.roi:
        drawn.boxes += draw_roi(canvas, layers.roi, layers.src_shape, rgba)
    if layers.defects:
        drawn.boxes += draw_defects(canvas, layers.defects, layers.src_shape, rgba)
    if layers.stars:
        drawn.boxes += draw_stars(canvas, layers.stars, layers.src_shape, rgba)
    if crop is not None:
        drawn.boxes += draw_zoom(canvas, None, layers.roi, layers.src_shape, style.zoom_factor,
                                 style.zoom_size, rgba, crop=crop)
    if layers.hud is not None:
        drawn.boxes += draw_hud(canvas, layers.hud, rgba)
    return canvas


def rgba_layer(size: tuple[int, int], layers: Layers, picture: Optional[np.ndarray] = None,
               style: Style = Style()) -> np.ndarray:
    """A new transparent ``(h, w, 4)`` RGBA overlay of ``size`` = (w, h), for ``set_overlay``
    (``RgbaLayer`` does the same frame after frame without starting from zero)."""
    w, h = size
    canvas = np.zeros((h, w, 4), np.uint8)
    return draw_all(canvas, layers, picture, style, rgba=True)


def compose_bgr(picture: np.ndarray, layers: Layers, style: Style = Style()) -> np.ndarray:
    """A new BGR picture with the overlay; ``picture`` stays untouched. With the heat map
    on, blending writes the new picture directly instead of copying and then blending."""
    if layers.heat is None:
        return draw_all(picture.copy(), layers, picture, style)
    canvas = blend_heat(picture, heat_levels(layers.heat), style.heatmap_alpha)
    return draw_all(canvas, layers, picture, style, heat=False)


class RgbaLayer:
    """The ``set_overlay`` layer, kept from frame to frame.

    Clearing and refilling a 1024x768 RGBA layer costs more than all the drawing on it,
    yet a frame's markers cover a few percent of it. So the layer keeps its background
    (transparent, or the heat map when on) and each frame first restores only the boxes
    and peaking pixels the previous frame drew, then draws. The background is rebuilt
    when the heat map's quantised levels or alpha change, or it is switched on or off.
    ``render`` returns the same array each time: use it (``set_overlay`` copies it) before
    the next call. Not thread-safe: one renderer per thread.
    """

    def __init__(self, size: tuple[int, int]):
        w, h = int(size[0]), int(size[1])
        self.size = (w, h)
        self.canvas = np.zeros((h, w, 4), np.uint8)
        self._heat: Optional[HeatRows] = None     # None: a transparent background
        self._key: Optional[tuple] = None
        self._levels: Optional[np.ndarray] = None
        self._drawn = Drawn()

    def _restore(self) -> None:
        """Put the background back wherever the previous frame drew."""
        c, heat, d = self.canvas, self._heat, self._drawn
        h, w = c.shape[:2]
        for x0, y0, x1, y1 in d.boxes:
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if x0 < x1 and y0 < y1:
                if heat is None:
                    c[y0:y1, x0:x1] = 0
                else:
                    heat.restore_box(c, x0, y0, x1, y1)
        if d.pixels is not None and d.pixels.size:
            flat = c.view(np.uint32).reshape(-1)
            if heat is None:
                flat[d.pixels] = 0
            else:
                heat.restore_pixels(flat, d.pixels)

    def _background(self, levels: Optional[np.ndarray], key: Optional[tuple]) -> None:
        """Bring the background up to date, touching as little of the layer as it can."""
        if key == self._key and not self._drawn.everywhere:
            self._restore()
            return
        if key is None:
            self._heat = None
            self.canvas.fill(0)
        else:
            old, self._heat = self._heat, HeatRows(levels, self.size[1], self.size[0], True, key[2])
            if (old is not None and not self._drawn.everywhere and key[1:] == self._key[1:]):
                # Same grid and alpha: a focus pull changes a few tile rows per frame.
                changed = np.flatnonzero((levels != self._levels).any(axis=1))
                self._heat.fill(self.canvas, changed)
                self._restore()                 # the unchanged rows, from the same colours
            else:
                self._heat.fill(self.canvas)
        self._key, self._levels = key, levels

    def render(self, layers: Layers, picture: Optional[np.ndarray] = None,
               style: Style = Style()) -> np.ndarray:
        levels = key = None
        if layers.heat is not None:
            levels = heat_levels(layers.heat)
            key = (levels.tobytes(), levels.shape, int(round(style.heatmap_alpha * 255)))
        self._background(levels, key)
        drawn = Drawn()
        draw_all(self.canvas, layers, picture, style, rgba=True, heat=False, drawn=drawn)
        self._drawn = drawn
        return self.canvas
