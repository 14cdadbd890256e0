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

Cost (issue 5: <= 2 ms per 640x480 frame): OpenCV does the full-frame work; numpy only
touches small arrays or a few hundred lit pixels, because numpy writes that broadcast a
3- or 4-byte colour over an image are ten times slower than the OpenCV equivalent. The
peaking threshold is an exact quantile found among the few candidates above a subsample's
bound, peaking is painted as the lit pixels' blocks (not a full-size mask), and
``RgbaLayer`` keeps the ``set_overlay`` layer between frames, restoring only what the
previous frame drew instead of clearing and refilling 1.2 MB.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from device.scoring.measures import gradient_magnitude, working_image

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
    return 128.0 / (float(cv2.mean(work)[0]) + 4.0)


def peaking_work(grey: np.ndarray) -> np.ndarray:
    """The classic scorer's working image (``measures.working_image`` at native scale),
    kept in 8 bits for an 8-bit frame: the float version holds the same integers, and
    ``spatialGradient`` takes both 3x3 Sobel derivatives of an 8-bit image in one pass."""
    return working_image(grey, native=True, as_float=False)[0]


def edge_strength(grey: np.ndarray, work: Optional[np.ndarray] = None) -> np.ndarray:
    """Brightness-normalised Sobel magnitude of ``grey`` reduced by one pyramid level: the
    classic scorer's own noise-robust working image and gradient (``device.scoring.measures``)."""
    if work is None:
        work = peaking_work(grey)
    if work.dtype == np.uint8:
        dx, dy = cv2.spatialGradient(work)     # the same Sobel kernels and border
        mag = cv2.magnitude(dx.astype(np.float32), dy.astype(np.float32))
    else:
        mag = gradient_magnitude(work)
    mag *= np.float32(_brightness_gain(work))
    return mag


def noise_level(grey: np.ndarray, work: Optional[np.ndarray] = None) -> float:
    """Robust noise estimate in the units of ``edge_strength``: median |Laplacian| of the
    reduced frame (flat areas and noise dominate a median), brightness-normalised."""
    if work is None:
        work = peaking_work(grey)
    sub = np.ascontiguousarray(work[::2, ::2]) if min(work.shape) > 64 else work
    lap = np.abs(cv2.Laplacian(sub, cv2.CV_32F)).ravel()
    # np.median partitions around two ranks at once, 5x slower than one rank and a max.
    m = lap.size // 2
    part = np.partition(lap, m)
    med = float(part[m]) if lap.size % 2 else 0.5 * (float(part[m]) + float(part[:m].max()))
    return max(med, 0.5) * _brightness_gain(work)


_SUBSAMPLE = 16   # every 16th pixel bounds the quantile from below (see share_quantile)


def share_quantile(values: np.ndarray, share: float) -> float:
    """The value that ``share`` of ``values`` reach: exactly ``np.partition``'s order
    statistic, found among the few candidates above a bound taken from a subsample."""
    flat = values.ravel()
    n = flat.size
    k = min(n - 1, max(0, int(round(n * (1.0 - share)))))
    need = n - k                         # the answer is the need-th largest value
    if n >= 64 * _SUBSAMPLE:
        sub = flat[::_SUBSAMPLE]
        expect = need / _SUBSAMPLE
        # Twice the expected count plus a generous sampling margin: the bound nearly
        # always lies below the answer, and if not, the full partition below catches it.
        j = sub.size - 1 - int(2 * expect + 4 * math.sqrt(expect) + 8)
        if j > 0:
            bound = np.partition(sub, j)[j]
            cand = flat[flat >= bound]
            # Every value above the answer is >= bound iff at least `need` values are.
            if cand.size >= need:
                i = cand.size - need
                return float(np.partition(cand, i)[i])
    return float(np.partition(flat, k)[k])


def peaking_threshold(strength: np.ndarray, noise: float, level: RunningPeak, t: float,
                      params: PeakingParams) -> float:
    """The adaptive threshold (see the module docstring); updates ``level``."""
    q = share_quantile(strength, params.share)
    peak = level.update(q, t)
    return max(q, params.noise_k * noise, params.floor * peak, 1e-6)


def peaking_mask(grey: np.ndarray, state: PeakingState, t: float,
                 params: PeakingParams = PeakingParams()) -> np.ndarray:
    """uint8 mask (1 = in-focus edge) at half the size of ``grey``; updates ``state``."""
    work = peaking_work(grey)     # reduced once, shared by both
    strength = edge_strength(grey, work)
    if state.frames % NOISE_EVERY == 0 or state.noise <= 0:
        state.noise = noise_level(grey, work)
    state.frames += 1
    thr = peaking_threshold(strength, state.noise, state.level, t, params)
    return (strength > thr).view(np.uint8)


def _spans(n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray]:
    """First destination index and count for each source index under nearest-neighbour
    scaling (destination i shows source floor(i * n_src / n_dst))."""
    first = (np.arange(n_src + 1, dtype=np.int64) * n_dst + n_src - 1) // n_src
    return first[:-1], np.diff(first)


@lru_cache(maxsize=8)
def _block_plan(mh: int, mw: int, h: int, w: int):
    """How each mask pixel maps to a block of canvas pixels (built once per size pair):
    the flat canvas index of each mask pixel's block corner, and the blocks' offsets."""
    y0, ny = _spans(mh, h)
    x0, nx = _spans(mw, w)
    ky, kx = max(1, int(ny.max())), max(1, int(nx.max()))
    dy = np.arange(ky, dtype=np.int64)[:, None]
    dx = np.arange(kx, dtype=np.int64)[None, :]
    uniform = bool((ny == ky).all() and (nx == kx).all())
    plan = ((y0[:, None] * w + x0[None, :]).ravel(), ny, nx, (dy * w + dx).ravel(), dy, dx)
    for a in plan:
        a.flags.writeable = False        # shared by every caller of the cache
    return (*plan, uniform)


def peaking_pixels(mask: np.ndarray, shape) -> Optional[np.ndarray]:
    """Flat indices of the canvas pixels a mask lights when scaled to ``shape`` (nearest
    neighbour), or None when so many light that painting a full-size mask is cheaper."""
    h, w = shape[:2]
    mh, mw = mask.shape[:2]
    lit = np.flatnonzero(mask if mask.dtype == bool else mask != 0)
    corner, ny, nx, offsets, dy, dx, uniform = _block_plan(mh, mw, h, w)
    if lit.size * offsets.size > h * w // 16:
        return None
    base = corner[lit]
    if uniform:
        return (base[:, None] + offsets[None, :]).ravel()
    # Uneven scale factors: blocks differ by a pixel, and shrinking drops some rows.
    ys, xs = np.divmod(lit, mw)
    keep = (dy[None] < ny[ys][:, None, None]) & (dx[None] < nx[xs][:, None, None])
    return (base[:, None, None] + (dy * w + dx)[None])[keep]


def _paint_pixels(canvas: np.ndarray, idx: np.ndarray, colour: tuple) -> None:
    """Set the canvas pixels at flat indices ``idx`` to ``colour``."""
    h, w, c = canvas.shape
    if canvas.flags.c_contiguous:
        if c == 4:      # one 32-bit store per pixel
            canvas.view(np.uint32).reshape(-1)[idx] = np.array(colour, np.uint8).view(np.uint32)[0]
        else:
            canvas.reshape(-1, c)[idx] = colour
    else:               # a camera buffer with row padding
        ys, xs = np.divmod(idx, w)
        canvas[ys, xs] = colour


@lru_cache(maxsize=4)
def _solid(h: int, w: int, colour: tuple) -> np.ndarray:
    """A constant image (built once per size and colour; masked copies read from it)."""
    img = np.empty((h, w, len(colour)), np.uint8)
    img[:] = colour
    img.flags.writeable = False
    return img


def draw_peaking(canvas: np.ndarray, mask: np.ndarray, colour_bgr, rgba: bool = False):
    """Paint the mask's pixels in ``colour``, scaled to the canvas (nearest: crisp dots).

    Returns the painted flat pixel indices, or None if it painted a full-size mask. A
    sharp frame lights 0.5% of the pixels, so painting their blocks beats upscaling the
    mask and running a masked copy over every pixel.
    """
    h, w = canvas.shape[:2]
    colour = _paint(colour_bgr, rgba)
    idx = peaking_pixels(mask, canvas.shape)
    if idx is not None:
        _paint_pixels(canvas, idx, colour)
        return idx
    if mask.shape[:2] != (h, w):
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    cv2.copyTo(_solid(h, w, colour), mask, canvas)
    return None


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


# --- boxes, markers, inset -----------------------------------------------------------
# Each draw_* below returns the (x0, y0, x1, y1) boxes it may have touched, so that a
# persistent layer (RgbaLayer) can restore exactly those next frame.

def scale_box(box: Sequence[float], src_shape, dst_shape) -> tuple[int, int, int, int]:
    """An x,y,w,h box in ``src`` pixels -> ``dst`` pixels."""
    sy = dst_shape[0] / src_shape[0]
    sx = dst_shape[1] / src_shape[1]
    x, y, w, h = box
    return (int(round(x * sx)), int(round(y * sy)), max(1, int(round(w * sx))), max(1, int(round(h * sy))))


def ui_scale(shape) -> float:
    """Line widths and fonts grow with the canvas so a 2028-px preview stays legible."""
    return max(1.0, shape[1] / 800.0)


def _text_box(text: str, org: tuple[int, int], scale: float, thickness: int) -> tuple:
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    m = 2 * thickness + 2        # anti-aliasing and glyph overshoot
    x, y = org
    return (x - m, y - th - m, x + tw + m, y + base + m)


def _outline(x0: int, y0: int, x1: int, y1: int, m: int) -> list:
    """The four strips ``m`` pixels either side of a rectangle's edges (restoring them is
    all a frame outline needs; its inside may be a quarter of the picture)."""
    return [(x0 - m, y0 - m, x1 + m + 1, y0 + m + 1), (x0 - m, y1 - m, x1 + m + 1, y1 + m + 1),
            (x0 - m, y0 - m, x0 + m + 1, y1 + m + 1), (x1 - m, y0 - m, x1 + m + 1, y1 + m + 1)]


def draw_roi(canvas: np.ndarray, roi, src_shape, rgba: bool = False) -> list:
    if not roi:
        return []
    x, y, w, h = scale_box(roi, src_shape, canvas.shape)
    th = max(1, int(round(ui_scale(canvas.shape))))
    cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), _paint((0, 255, 255), rgba), th)
    return _outline(x, y, x + w - 1, y + h - 1, th + 1)


def draw_defects(canvas: np.ndarray, defects, src_shape, rgba: bool = False) -> list:
    """A circle and the kind for each defect (``x``, ``y`` in scored-frame pixels)."""
    if not defects:
        return []
    s = ui_scale(canvas.shape)
    sx = canvas.shape[1] / src_shape[1]
    sy = canvas.shape[0] / src_shape[0]
    colour = _paint((255, 0, 255), rgba)
    boxes = []
    for d in list(defects)[:64]:       # a flood of markers would hide the picture
        try:
            x, y = int(round(float(d["x"]) * sx)), int(round(float(d["y"]) * sy))
        except (KeyError, TypeError, ValueError):
            continue
        r, t = int(10 * s), max(1, int(s))
        cv2.circle(canvas, (x, y), r, colour, t, cv2.LINE_AA)
        label = str(d.get("kind", "defect"))[:12]
        org = (x + r + 2, y + 4)
        cv2.putText(canvas, label, org, _FONT, 0.4 * s, colour, t, cv2.LINE_AA)
        m = r + t + 2
        boxes += [(x - m, y - m, x + m + 1, y + m + 1), _text_box(label, org, 0.4 * s, t)]
    return boxes


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


def inset_size(shape, size: float) -> tuple[int, int]:
    H, W = shape[:2]
    iw = max(16, int(W * size))
    return iw, max(12, int(iw * H / W))


def zoom_crop(picture: np.ndarray, roi, src_shape, canvas_shape, factor: float = 3.0,
              size: float = 0.35) -> np.ndarray:
    """The part of ``picture`` the inset magnifies (a view). A picture larger than the
    canvas (the main stream under a smaller preview) gives its own, finer pixels."""
    iw, ih = inset_size(canvas_shape, size)
    x0, y0, rw, rh = zoom_region(roi, src_shape, canvas_shape, factor, iw, ih)
    H, W = canvas_shape[:2]
    ph, pw = picture.shape[:2]
    if (ph, pw) != (H, W):
        sx, sy = pw / W, ph / H
        rw, rh = max(1, min(pw, int(round(rw * sx)))), max(1, min(ph, int(round(rh * sy))))
        x0 = min(max(0, int(round(x0 * sx))), pw - rw)
        y0 = min(max(0, int(round(y0 * sy))), ph - rh)
    return picture[y0:y0 + rh, x0:x0 + rw]


def _resize_into(src: np.ndarray, dst: np.ndarray, interpolation: int) -> None:
    out = cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=interpolation)
    if not np.may_share_memory(out, dst):    # OpenCV wrote elsewhere: copy it in
        dst[...] = out


def draw_zoom(canvas: np.ndarray, picture: np.ndarray, roi, src_shape, factor: float = 3.0,
              size: float = 0.35, rgba: bool = False, crop: Optional[np.ndarray] = None) -> list:
    """A magnified inset (top right) of the ROI taken from the clean ``picture`` (BGR, any
    size; or ``crop``, already cut by ``zoom_crop``). Nearest-neighbour on purpose: real
    pixels are what a focus check needs."""
    H, W = canvas.shape[:2]
    iw, ih = inset_size(canvas.shape, size)
    x0, y0, rw, rh = zoom_region(roi, src_shape, canvas.shape, factor, iw, ih)
    if crop is None:
        crop = zoom_crop(picture, roi, src_shape, canvas.shape, factor, size)
    if crop.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    if rgba:     # converting the small crop beats swapping channels of the large inset
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGBA)
    m = max(2, int(4 * ui_scale(canvas.shape)))
    X, Y = W - iw - m, m
    shrink = crop.shape[1] > iw or crop.shape[0] > ih
    _resize_into(crop, canvas[Y:Y + ih, X:X + iw], cv2.INTER_AREA if shrink else cv2.INTER_NEAREST)
    white = _paint((255, 255, 255), rgba)
    cv2.rectangle(canvas, (X - 1, Y - 1), (X + iw, Y + ih), white, 1)
    cv2.rectangle(canvas, (x0, y0), (x0 + rw - 1, y0 + rh - 1), white, 1)
    return [(X - 2, Y - 2, X + iw + 2, Y + ih + 2)] + _outline(x0, y0, x0 + rw - 1, y0 + rh - 1, 1)


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


def draw_hud(canvas: np.ndarray, info: HudInfo, rgba: bool = False) -> list:
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
    if rgba:     # one OpenCV fill: numpy broadcasting a 4-byte colour is 15x slower
        cv2.rectangle(canvas, (0, 0), (panel_w - 1, panel_h - 1), (0, 0, 0, 140), -1)
    else:
        canvas[:panel_h, :panel_w] >>= 1   # darken by half: text stays readable on any scene
    boxes = [(0, 0, panel_w, panel_h)]
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
            t = max(1, int(2 * s))
            cv2.line(canvas, (px, y - 2), (px, y + bar_h + 2), _paint((255, 255, 255), rgba), t)
            boxes.append((px - t - 1, y - t - 3, px + t + 2, y + bar_h + t + 3))
        y += bar_h + pad
    white = _paint((255, 255, 255), rgba)
    for text in lines:
        y += lh
        if y > H:
            break
        org, t = (pad, y - int(5 * s)), max(1, int(s))
        cv2.putText(canvas, text, org, _FONT, 0.45 * s, white, t, cv2.LINE_AA)
        boxes.append(_text_box(text, org, 0.45 * s, t))
    return boxes


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
