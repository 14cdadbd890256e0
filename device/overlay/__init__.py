"""The viewfinder overlay: pure functions on numpy arrays, no camera, no threads.

Modules: ``running`` (decaying peaks), ``peaking``, ``heatmap``, ``marks`` (ROI, defects,
zoom inset), ``hud`` and ``compose`` (all layers into a picture or an RGBA layer); the
public names are importable from ``device.overlay`` itself.

Two kinds of work happen here:

* **Analysis** on the *scored* frame (grey, the lores Y plane on a Pi): the focus-peaking
  edge map and its adaptive threshold. It runs once per frame whatever the number of
  viewers.
* **Drawing** on a *display-sized* canvas, which may be larger than the scored frame
  (lores 640x480 scored, main 2028x1520 shown). A canvas is either a BGR picture to draw
  into (web stream, ``post_callback``) or a transparent RGBA layer (``set_overlay``); every
  ``draw_*`` function takes ``rgba=`` and does the right thing for both.

Peaking threshold: Magic Lantern highlights a fixed *share* of pixels (0.5%) because a
fixed threshold gives "a red mess or nothing". A share alone, though, lights up the
least-blurred structure of a totally defocused frame, or plain sensor noise on a flat
wall. So the threshold is the largest of three terms:

1. the ``(1 - share)`` quantile of this frame's edge strength (the Magic Lantern rule);
2. a *noise floor*: ``noise_k`` times a robust noise estimate (median absolute Laplacian,
   which flat areas and noise dominate), so a noise-only frame shows nothing;
3. a *peak floor*: ``floor`` times a running peak of the quantile (decaying with a
   half-life of ``memory_s`` seconds). Once the user has turned the ring through focus, a
   defocused frame's edges fall below 70% of the in-focus edge strength and the
   peaking fades out, exactly when the user needs the "you are past it" cue. The decay lets a new
   scene take over within seconds; resetting the peak hold resets it at once.

Edge strength is the Sobel gradient magnitude on the frame reduced by one pyramid level,
divided by the frame's mean brightness: on Pi sensor frames a full-resolution Laplacian is
noise (on the real PCB focus sweep the full-resolution curve is nearly flat), and the brightness division keeps the peak floor valid
across exposure changes.

Cost (issue 5: <= 2 ms per 640x480 frame): OpenCV does the full-frame work; numpy only
touches small arrays or a few hundred lit pixels, because numpy writes that broadcast a
3- or 4-byte colour over an image are ten times slower than the OpenCV equivalent. The
peaking threshold is an exact quantile found among the few candidates above a subsample's
bound, peaking is painted as the lit pixels' blocks (not a full-size mask), and
``RgbaLayer`` keeps the ``set_overlay`` layer between frames, restoring only what the
previous frame drew instead of clearing and refilling 1.2 MB.
"""
from __future__ import annotations

from device.overlay.paint import ELEMENTS, NOISE_EVERY
from device.overlay.running import RunningPeak, PeakHold, PeakingState, PeakingParams
from device.overlay.peaking import (
    peaking_work,
    edge_strength,
    noise_level,
    share_quantile,
    peaking_threshold,
    peaking_mask,
    peaking_pixels,
    draw_peaking,
)
from device.overlay.heatmap import (
    heat_lut,
    heat_values,
    HEAT_LEVELS,
    heat_levels,
    GRID_BGR,
    HeatRows,
    blend_heat,
    draw_heatmap,
)
from device.overlay.marks import (
    scale_box,
    ui_scale,
    draw_roi,
    draw_defects,
    draw_stars,
    zoom_region,
    inset_size,
    zoom_crop,
    draw_zoom,
)
from device.overlay.hud import HudInfo, StarLine, hud_lines, bar_colour, draw_hud
from device.overlay.compose import Layers, Style, Drawn, draw_all, rgba_layer, compose_bgr, RgbaLayer

__all__ = [
    "ELEMENTS",
    "NOISE_EVERY",
    "RunningPeak",
    "PeakHold",
    "PeakingState",
    "PeakingParams",
    "peaking_work",
    "edge_strength",
    "noise_level",
    "share_quantile",
    "peaking_threshold",
    "peaking_mask",
    "peaking_pixels",
    "draw_peaking",
    "heat_lut",
    "heat_values",
    "HEAT_LEVELS",
    "heat_levels",
    "GRID_BGR",
    "HeatRows",
    "blend_heat",
    "draw_heatmap",
    "scale_box",
    "ui_scale",
    "draw_roi",
    "draw_defects",
    "draw_stars",
    "zoom_region",
    "inset_size",
    "zoom_crop",
    "draw_zoom",
    "HudInfo",
    "StarLine",
    "hud_lines",
    "bar_colour",
    "draw_hud",
    "Layers",
    "Style",
    "Drawn",
    "draw_all",
    "rgba_layer",
    "compose_bgr",
    "RgbaLayer",
]
