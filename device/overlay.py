"""The viewfinder overlay: pure functions on numpy arrays, no camera, no threads.

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
noise (see docs/anchors.md), and the brightness division keeps the peak floor valid
across exposure changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional, Sequence

import cv2
import numpy as np

from .measures import gradient_magnitude, working_image

# Named colours, BGR as OpenCV and the camera's RGB888 buffers store them.
COLOURS = {
    "red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 64, 0), "yellow": (0, 255, 255),
    "cyan": (255, 255, 0), "magenta": (255, 0, 255), "white": (255, 255, 255),
    "orange": (0, 165, 255), "black": (0, 0, 0),
}
ELEMENTS = ("peaking", "heatmap", "hud", "defects", "roi", "zoom")
NOISE_EVERY = 8          # frames between noise-floor estimates (sensor noise changes slowly)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def parse_colour(text: str) -> tuple[int, int, int]:
    """A colour name or ``#rrggbb`` -> BGR; raises ValueError naming the problem."""
    t = str(text).strip().lower()
    if t in COLOURS:
        return COLOURS[t]
    if len(t) == 7 and t.startswith("#"):
        try:
            r, g, b = (int(t[i:i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            pass
        else:
            return (b, g, r)
    raise ValueError(f"unknown colour {text!r}: use #rrggbb or one of {', '.join(COLOURS)}")


def _paint(colour_bgr, rgba: bool, alpha: int = 255) -> tuple:
    b, g, r = colour_bgr
    return (r, g, b, alpha) if rgba else (b, g, r)


# --- running values ------------------------------------------------------------------

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


# --- focus peaking -------------------------------------------------------------------

def _brightness_gain(work: np.ndarray) -> float:
    # +4 keeps a black frame from dividing by zero; values stay in grey levels per level.
    return 128.0 / (float(work.mean()) + 4.0)


def edge_strength(grey: np.ndarray, work: Optional[np.ndarray] = None) -> np.ndarray:
    """Brightness-normalised Sobel magnitude of ``grey`` reduced by one pyramid level: the
    classic scorer's own noise-robust working image and gradient (``device.measures``)."""
    if work is None:
        work, _ = working_image(grey, native=True)
    mag = gradient_magnitude(work)
    mag *= np.float32(_brightness_gain(work))
    return mag


def noise_level(grey: np.ndarray, work: Optional[np.ndarray] = None) -> float:
    """Robust noise estimate in the units of ``edge_strength``: median |Laplacian| of the
    reduced frame (flat areas and noise dominate a median), brightness-normalised."""
    if work is None:
        work, _ = working_image(grey, native=True)
    lap = cv2.Laplacian(work[::2, ::2] if min(work.shape) > 64 else work, cv2.CV_32F)
    med = float(np.median(np.abs(lap)))
    return max(med, 0.5) * _brightness_gain(work)


def peaking_threshold(strength: np.ndarray, noise: float, level: RunningPeak, t: float,
                      params: PeakingParams) -> float:
    """The adaptive threshold (see the module docstring); updates ``level``."""
    flat = strength.ravel()
    k = min(flat.size - 1, max(0, int(round(flat.size * (1.0 - params.share)))))
    q = float(np.partition(flat, k)[k])
    peak = level.update(q, t)
    return max(q, params.noise_k * noise, params.floor * peak, 1e-6)


def peaking_mask(grey: np.ndarray, state: PeakingState, t: float,
                 params: PeakingParams = PeakingParams()) -> np.ndarray:
    """uint8 mask (1 = in-focus edge) at half the size of ``grey``; updates ``state``."""
    work, _ = working_image(grey, native=True)     # reduced once, shared by both
    strength = edge_strength(grey, work)
    if state.frames % NOISE_EVERY == 0 or state.noise <= 0:
        state.noise = noise_level(grey, work)
    state.frames += 1
    thr = peaking_threshold(strength, state.noise, state.level, t, params)
    return (strength > thr).view(np.uint8)


@lru_cache(maxsize=4)
def _solid(h: int, w: int, colour: tuple) -> np.ndarray:
    """A constant image (built once per size and colour; masked copies read from it)."""
    img = np.empty((h, w, len(colour)), np.uint8)
    img[:] = colour
    img.flags.writeable = False
    return img


def draw_peaking(canvas: np.ndarray, mask: np.ndarray, colour_bgr, rgba: bool = False) -> None:
    """Paint the mask's pixels in ``colour``, scaled to the canvas (nearest: crisp dots).

    A masked copy from a cached solid-colour image: OpenCV skips the unlit 99.5% quickly,
    where numpy boolean indexing would walk every pixel.
    """
    h, w = canvas.shape[:2]
    if mask.shape[:2] != (h, w):
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    cv2.copyTo(_solid(h, w, _paint(colour_bgr, rgba)), mask, canvas)


# --- tile heat map -------------------------------------------------------------------

@lru_cache(maxsize=2)
def heat_lut(rgba: bool) -> np.ndarray:
    """256-entry colour map, cold blue to hot red (built once)."""
    cmap = getattr(cv2, "COLORMAP_TURBO", cv2.COLORMAP_JET)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(-1, 1), cmap).reshape(256, 3)
    return np.ascontiguousarray(lut[:, ::-1]) if rgba else lut


def heat_values(result: dict, level: RunningPeak, t: float, source: str = "auto") -> Optional[np.ndarray]:
    """Per-tile values in 0..1: the CNN's sharp probability if wanted and present, else the
    classic tile focus relative to its running peak (so a blurred frame stays cold)."""
    cnn = result.get("cnn_tile_map")
    if source in ("auto", "cnn") and cnn is not None:
        return np.clip(np.asarray(cnn, dtype=np.float32), 0.0, 1.0)
    tiles = result.get("tile_map")
    if tiles is None or source == "cnn":
        return None
    tiles = np.asarray(tiles, dtype=np.float32)
    if tiles.size == 0:
        return None
    top = level.update(float(np.nanmax(tiles)) if np.isfinite(tiles).any() else 0.0, t)
    return np.clip(np.nan_to_num(tiles / top), 0.0, 1.0) if top > 0 else np.zeros_like(tiles)


HEAT_LEVELS = 32   # colour steps: invisible banding, and a steady scene reuses its image


@lru_cache(maxsize=2)
def _heat_image(key: bytes, rows: int, cols: int, h: int, w: int, rgba: bool, a8: int) -> np.ndarray:
    """The full-size tile colour image for quantised tile levels (cached: upscaling is the
    dearest step, and on a tripod the levels rarely change from one frame to the next)."""
    idx = np.frombuffer(key, np.uint8).reshape(rows, cols)
    small = heat_lut(rgba)[idx]
    if rgba:
        small = np.concatenate([small, np.full((rows, cols, 1), a8, np.uint8)], axis=2)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    step = _paint((40, 40, 40), rgba, 160)
    for r in range(1, rows):
        big[r * h // rows, :] = step
    for c in range(1, cols):
        big[:, c * w // cols] = step
    big.flags.writeable = False
    return big


def draw_heatmap(canvas: np.ndarray, values: np.ndarray, alpha: float = 0.35,
                 rgba: bool = False) -> None:
    """A translucent grid over the whole canvas coloured by ``values`` (rows x cols, 0..1)."""
    h, w = canvas.shape[:2]
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    q = np.round(v * (HEAT_LEVELS - 1)) * (255.0 / (HEAT_LEVELS - 1))
    idx = np.ascontiguousarray(q.astype(np.uint8))
    a8 = int(round(alpha * 255))
    big = _heat_image(idx.tobytes(), idx.shape[0], idx.shape[1], h, w, rgba, a8)
    if rgba:
        canvas[:] = big
    else:
        cv2.addWeighted(canvas, 1.0 - alpha, big, alpha, 0.0, dst=canvas)


# --- boxes, markers, inset -----------------------------------------------------------

def scale_box(box: Sequence[float], src_shape, dst_shape) -> tuple[int, int, int, int]:
    """An x,y,w,h box in ``src`` pixels -> ``dst`` pixels."""
    sy = dst_shape[0] / src_shape[0]
    sx = dst_shape[1] / src_shape[1]
    x, y, w, h = box
    return (int(round(x * sx)), int(round(y * sy)), max(1, int(round(w * sx))), max(1, int(round(h * sy))))


def ui_scale(shape) -> float:
    """Line widths and fonts grow with the canvas so a 2028-px preview stays legible."""
    return max(1.0, shape[1] / 800.0)


def draw_roi(canvas: np.ndarray, roi, src_shape, rgba: bool = False) -> None:
    if not roi:
        return
    x, y, w, h = scale_box(roi, src_shape, canvas.shape)
    th = max(1, int(round(ui_scale(canvas.shape))))
    cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), _paint((0, 255, 255), rgba), th)


def draw_defects(canvas: np.ndarray, defects, src_shape, rgba: bool = False) -> None:
    """A circle and the kind for each defect (``x``, ``y`` in scored-frame pixels)."""
    if not defects:
        return
    s = ui_scale(canvas.shape)
    sx = canvas.shape[1] / src_shape[1]
    sy = canvas.shape[0] / src_shape[0]
    colour = _paint((255, 0, 255), rgba)
    for d in list(defects)[:64]:       # a flood of markers would hide the picture
        try:
            x, y = int(round(float(d["x"]) * sx)), int(round(float(d["y"]) * sy))
        except (KeyError, TypeError, ValueError):
            continue
        r = int(10 * s)
        cv2.circle(canvas, (x, y), r, colour, max(1, int(s)), cv2.LINE_AA)
        label = str(d.get("kind", "defect"))[:12]
        cv2.putText(canvas, label, (x + r + 2, y + 4), _FONT, 0.4 * s, colour, max(1, int(s)), cv2.LINE_AA)


def zoom_region(roi, src_shape, dst_shape, factor: float, inset_w: int, inset_h: int):
    """The display-pixel region (x, y, w, h) that the inset magnifies: centred on the ROI
    (or the frame), ``inset / factor`` in size, kept inside the frame."""
    H, W = dst_shape[:2]
    if roi:
        x, y, w, h = scale_box(roi, src_shape, dst_shape)
        cx, cy = x + w / 2.0, y + h / 2.0
    else:
        cx, cy = W / 2.0, H / 2.0
    rw = max(4, min(W, int(round(inset_w / factor))))
    rh = max(4, min(H, int(round(inset_h / factor))))
    x0 = int(min(max(0, round(cx - rw / 2.0)), W - rw))
    y0 = int(min(max(0, round(cy - rh / 2.0)), H - rh))
    return x0, y0, rw, rh


def draw_zoom(canvas: np.ndarray, picture: np.ndarray, roi, src_shape, factor: float = 3.0,
              size: float = 0.35, rgba: bool = False) -> None:
    """A magnified inset (top right) of the ROI taken from the clean ``picture`` (BGR,
    canvas-sized). Nearest-neighbour on purpose: real pixels are what a focus check needs."""
    H, W = canvas.shape[:2]
    iw = max(16, int(W * size))
    ih = max(12, int(iw * H / W))
    x0, y0, rw, rh = zoom_region(roi, src_shape, canvas.shape, factor, iw, ih)
    crop = picture[y0:y0 + rh, x0:x0 + rw]
    inset = cv2.resize(crop, (iw, ih), interpolation=cv2.INTER_NEAREST)
    m = max(2, int(4 * ui_scale(canvas.shape)))
    X, Y = W - iw - m, m
    if rgba:
        canvas[Y:Y + ih, X:X + iw, :3] = inset[..., ::-1]
        canvas[Y:Y + ih, X:X + iw, 3] = 255
    else:
        canvas[Y:Y + ih, X:X + iw] = inset
    white = _paint((255, 255, 255), rgba)
    cv2.rectangle(canvas, (X - 1, Y - 1), (X + iw, Y + ih), white, 1)
    cv2.rectangle(canvas, (x0, y0), (x0 + rw - 1, y0 + rh - 1), white, 1)


# --- HUD -----------------------------------------------------------------------------

@dataclass
class HudInfo:
    """Everything the HUD shows; ``None`` fields are left out (feature not built or off)."""
    focus: Optional[float] = None
    peak: Optional[float] = None
    label: Optional[str] = None
    sharp_prob: Optional[float] = None
    autofocus: Optional[str] = None
    motor: Optional[str] = None
    captures: Optional[int] = None
    fps: Optional[float] = None


def hud_lines(info: HudInfo) -> list[str]:
    lines = []
    if info.focus is not None:
        peak = f"  peak {info.peak:.1f}" if info.peak else ""
        lines.append(f"focus {info.focus:.1f}{peak}")
    if info.label:
        p = f" {info.sharp_prob:.2f}" if info.sharp_prob is not None else ""
        lines.append(f"CNN {info.label}{p}")
    if info.autofocus:
        lines.append(f"AF {info.autofocus}")
    if info.motor:
        lines.append(f"motor {info.motor}")
    if info.captures is not None:
        lines.append(f"captures {info.captures}")
    if info.fps is not None:
        lines.append(f"{info.fps:.1f} fps")
    return lines


def bar_colour(ratio: float) -> tuple[int, int, int]:
    """Green at the peak, amber near it, red once clearly past it (BGR)."""
    if ratio >= 0.95:
        return (0, 220, 0)
    if ratio >= 0.8:
        return (0, 190, 255)
    return (0, 0, 230)


def draw_hud(canvas: np.ndarray, info: HudInfo, rgba: bool = False) -> None:
    """Top-left panel: a focus bar with the held peak, then one line per known fact."""
    s = ui_scale(canvas.shape)
    lines = hud_lines(info)
    pad, lh = int(6 * s), int(18 * s)
    bar_w, bar_h = int(200 * s), int(10 * s)
    has_bar = info.focus is not None
    panel_h = pad * 2 + (bar_h + pad if has_bar else 0) + lh * len(lines)
    panel_w = bar_w + 2 * pad
    H, W = canvas.shape[:2]
    panel_h, panel_w = min(panel_h, H), min(panel_w, W)
    region = canvas[:panel_h, :panel_w]
    if rgba:
        region[..., :3] = 0
        region[..., 3] = 140
    else:
        region >>= 1        # darken by half: cheap, and text stays readable on any scene
    y = pad
    if has_bar:
        peak = info.peak or 0.0
        full = max(peak, info.focus, 1e-9) * 1.25
        filled = int(bar_w * min(1.0, max(0.0, info.focus) / full))
        ratio = info.focus / peak if peak > 0 else 1.0
        cv2.rectangle(canvas, (pad, y), (pad + bar_w, y + bar_h), _paint((90, 90, 90), rgba), -1)
        if filled > 0:
            cv2.rectangle(canvas, (pad, y), (pad + filled, y + bar_h), _paint(bar_colour(ratio), rgba), -1)
        if peak > 0:
            px = pad + int(bar_w * peak / full)
            cv2.line(canvas, (px, y - 2), (px, y + bar_h + 2), _paint((255, 255, 255), rgba), max(1, int(2 * s)))
        y += bar_h + pad
    white = _paint((255, 255, 255), rgba)
    for text in lines:
        y += lh
        if y > H:
            break
        cv2.putText(canvas, text, (pad, y - int(5 * s)), _FONT, 0.45 * s, white, max(1, int(s)), cv2.LINE_AA)


# --- everything ----------------------------------------------------------------------

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


@dataclass(frozen=True)
class Style:
    peaking_colour: tuple = (0, 0, 255)
    heatmap_alpha: float = 0.35
    zoom_factor: float = 3.0
    zoom_size: float = 0.35


def draw_all(canvas: np.ndarray, layers: Layers, picture: Optional[np.ndarray] = None,
             style: Style = Style(), rgba: bool = False) -> np.ndarray:
    """Draw every present layer onto ``canvas`` in place (heat map under, HUD on top).

    ``picture`` is the clean display-sized frame the zoom inset magnifies; for a BGR canvas
    it defaults to the canvas itself, taken before anything is drawn.
    """
    if layers.zoom and picture is None and not rgba:
        picture = canvas.copy()
    if layers.heat is not None:
        draw_heatmap(canvas, layers.heat, style.heatmap_alpha, rgba)
    if layers.peaking is not None:
        draw_peaking(canvas, layers.peaking, style.peaking_colour, rgba)
    if layers.roi:
        draw_roi(canvas, layers.roi, layers.src_shape, rgba)
    if layers.defects:
        draw_defects(canvas, layers.defects, layers.src_shape, rgba)
    if layers.zoom and picture is not None:
        draw_zoom(canvas, picture, layers.roi, layers.src_shape, style.zoom_factor, style.zoom_size, rgba)
    if layers.hud is not None:
        draw_hud(canvas, layers.hud, rgba)
    return canvas


def rgba_layer(size: tuple[int, int], layers: Layers, picture: Optional[np.ndarray] = None,
               style: Style = Style()) -> np.ndarray:
    """A transparent ``(h, w, 4)`` RGBA overlay of ``size`` = (w, h), for ``set_overlay``."""
    w, h = size
    canvas = np.zeros((h, w, 4), np.uint8)
    if picture is not None and picture.shape[:2] != (h, w):
        picture = cv2.resize(picture, (w, h), interpolation=cv2.INTER_AREA)
    return draw_all(canvas, layers, picture, style, rgba=True)
