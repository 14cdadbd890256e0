"""Test helper: camera-like frames with defective photosites, independent of ``train``.

A defect is set in the RGGB Bayer mosaic (one photosite), then the mosaic is
demosaiced and JPEG-compressed, so the defect reaches the tests as the small coloured
blob a real camera produces, not as a clean single pixel.
"""
from __future__ import annotations

import cv2
import numpy as np

LEVELS = {"dead": 0, "hot": 255, "stuck": 130}    # stuck: a fixed mid level


def mosaic(bgr: np.ndarray) -> np.ndarray:
    """BGR -> RGGB mosaic: R at (even, even), G at the two mixed sites, B at (odd, odd)."""
    raw = np.empty(bgr.shape[:2], np.uint8)
    raw[0::2, 0::2] = bgr[0::2, 0::2, 2]
    raw[0::2, 1::2] = bgr[0::2, 1::2, 1]
    raw[1::2, 0::2] = bgr[1::2, 0::2, 1]
    raw[1::2, 1::2] = bgr[1::2, 1::2, 0]
    return raw


def camera_frame(bgr: np.ndarray, defects=(), jpeg_quality: int = 90) -> np.ndarray:
    """``defects``: iterable of (x, y, kind). Returns the demosaiced, JPEG'd BGR frame."""
    raw = mosaic(bgr)
    for x, y, kind in defects:
        raw[y, x] = LEVELS[kind]
    out = cv2.cvtColor(raw, cv2.COLOR_BayerBG2BGR)   # OpenCV's name for RGGB
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def crops(base: np.ndarray, n: int, size=(480, 640), step=(13, 29)) -> list[np.ndarray]:
    """``n`` clean crops of ``base`` sliding by ``step`` (dy, dx): the scene moves."""
    h, w = size
    out = []
    for i in range(n):
        y = (i * step[0]) % (base.shape[0] - h)
        x = (i * step[1]) % (base.shape[1] - w)
        out.append(np.ascontiguousarray(base[y:y + h, x:x + w]))
    return out


def panning_sequence(base: np.ndarray, n: int, size=(480, 640), step=(13, 29), defects=()):
    """Camera frames of a panning scene; the defects stay on the same photosites."""
    return [camera_frame(c, defects) for c in crops(base, n, size, step)]


def visible_sites(clean_frames, wanted, margin=24, spacing=48, contrast=90.0, seed=0):
    """Photosites where each wanted defect kind stands out in *every* clean frame.

    ``wanted``: [(kind, count), ...]. A site qualifies when the defect level differs by
    at least ``contrast`` from the median of that colour channel around it in all
    frames: a hot pixel on a white wall is no defect anyone (or anything) could see.
    Chosen from the clean scene only, never from a detector's output.
    """
    raws = [mosaic(f) for f in clean_frames]
    h, w = raws[0].shape
    # A seeded shuffle of all sites (every Bayer colour), so picks spread over the frame.
    ys, xs = np.mgrid[margin:h - margin, margin:w - margin]
    sites = np.stack([ys.ravel(), xs.ravel()], 1)
    sites = sites[np.random.default_rng(seed).permutation(len(sites))]
    picks: list[tuple[int, int, str]] = []
    for kind, count in wanted:
        level = LEVELS[kind]
        got = 0
        for y, x in sites:
            if got == count:
                break
            if any(abs(x - px) < spacing and abs(y - py) < spacing for px, py, _ in picks):
                continue
            # Same Bayer colour as (y, x): every second sample in a 9x9 window.
            if all(abs(level - float(np.median(r[y - 4:y + 5:2, x - 4:x + 5:2]))) >= contrast
                   for r in raws):
                picks.append((int(x), int(y), kind))
                got += 1
    return picks


# --- a fixed camera: defects put into the mosaic of real frames ------------------------------

KIND_LEVELS = {"dead": (0, 12), "hot": (235, 256), "stuck": (70, 200)}   # [lo, hi) per kind
MIN_CONTRAST = 60     # a photosite changed by less is no defect anyone could see


def evenly_spaced(paths, n: int) -> list:
    """``n`` of ``paths`` spread evenly from the first to the last (all when fewer)."""
    paths = list(paths)
    idx = np.unique(np.linspace(0, len(paths) - 1, min(n, len(paths))).round().astype(int))
    return [paths[i] for i in idx]


def random_sites(rng, shape, n: int, margin: int = 12, spacing: int = 8):
    """``n`` photosites ``(y, x, kind, level)`` at least ``spacing`` apart (one detection
    each), kinds in turn, levels drawn per kind from ``KIND_LEVELS``."""
    h, w = shape
    picks: list = []
    kinds = ("dead", "hot", "stuck")
    tries = 0
    while len(picks) < n and tries < 50 * n:
        tries += 1
        y, x = int(rng.integers(margin, h - margin)), int(rng.integers(margin, w - margin))
        if any(abs(y - py) < spacing and abs(x - px) < spacing for py, px, _, _ in picks):
            continue
        kind = kinds[len(picks) % 3]
        picks.append((y, x, kind, int(rng.integers(*KIND_LEVELS[kind]))))
    return picks


def fixed_camera_frames(images, sites=()):
    """The frames a fixed camera with defective photosites ``sites`` would give of
    ``images`` (BGR): each is mosaicked, the sites set, demosaiced with OpenCV and stored
    losslessly (a PNG round trip). Returns ``(frames, visible)``: per site, in how many
    frames it changed its photosite by at least ``MIN_CONTRAST``."""
    frames, visible = [], np.zeros(len(sites), int)
    for img in images:
        raw = mosaic(img)
        for i, (y, x, _, level) in enumerate(sites):
            visible[i] += abs(int(raw[y, x]) - level) >= MIN_CONTRAST
            raw[y, x] = level
        ok, png = cv2.imencode(".png", cv2.cvtColor(raw, cv2.COLOR_BayerBG2BGR))
        assert ok
        frames.append(cv2.imdecode(png, cv2.IMREAD_COLOR))
    return frames, visible


# --- a sensor's defect population, as real sensors show it ------------------------------------
# Hot pixels are mostly isolated photosites with a tail of clusters of 2-3; a few percent of
# defects are whole columns or rows; a hot pixel's dark signal is a dark current, so it grows
# in proportion to the exposure time and doubles every few degrees Celsius (silicon: ~6-7).

DARK_DOUBLING_C = 6.5
CLUSTER_SHARE = 0.12     # of the photosite defects: clusters of 2 or 3
LINE_SHARE = 0.03        # of all defects: a column (most) or a row


def sensor_population(rng, shape, n: int, margin: int = 8):
    """``(sites, lines)`` for a sensor with ``n`` defects. ``sites``: one list per defect of
    ``(y, x)`` photosites (1, or 2-3 adjacent) with its ``kind`` and, for hot ones, a dark
    current in grey levels per second at 25 C (log-normal: most are faint, a few glow),
    ``(photosites, kind, rate)``. ``lines``: ``(kind, index, offset)`` with ``kind`` column or
    row and a fixed offset in grey levels (a readout fault, so not exposure-dependent)."""
    h, w = shape
    sites, lines, taken = [], [], set()
    for _ in range(n):
        if rng.random() < LINE_SHARE:
            kind = "column" if rng.random() < 0.8 else "row"
            lines.append((kind, int(rng.integers(margin, (w if kind == "column" else h) - margin)),
                          float(rng.uniform(3.0, 8.0) * rng.choice([-1, 1]))))
            continue
        while True:
            y, x = int(rng.integers(margin, h - margin)), int(rng.integers(margin, w - margin))
            if not any((y + dy, x + dx) in taken for dy in range(-4, 5) for dx in range(-4, 5)):
                break
        px = [(y, x)]
        if rng.random() < CLUSTER_SHARE:
            for _ in range(int(rng.integers(1, 3))):
                cy, cx = px[int(rng.integers(len(px)))]
                dy, dx = [(0, 1), (1, 0), (0, -1), (-1, 0)][int(rng.integers(4))]
                if (cy + dy, cx + dx) not in px:
                    px.append((cy + dy, cx + dx))
        taken.update(px)
        kind = ("hot", "hot", "hot", "stuck", "dead")[int(rng.integers(5))]   # hot ones dominate
        rate = float(np.exp(rng.normal(np.log(20.0), 1.0))) if kind == "hot" else 0.0
        sites.append((px, kind, rate))
    return sites, lines


def dark_frames(rng, shape, population, n: int, exposure_s: float, temperature_c: float = 25.0,
                black: float = 16.0, read_noise: float = 1.5, stuck_level: int = 130):
    """``n`` lens-capped raw frames (grey, as 3 equal channels) of a sensor with
    ``population`` (``sensor_population``) at ``exposure_s`` and ``temperature_c``."""
    sites, lines = population
    gain = exposure_s * 2.0 ** ((temperature_c - 25.0) / DARK_DOUBLING_C)
    base = np.full(shape, black, np.float32)
    for kind, i, off in lines:
        if kind == "column":
            base[:, i] += off
        else:
            base[i, :] += off
    frames = []
    for _ in range(n):
        f = base + rng.normal(0.0, read_noise, shape).astype(np.float32)
        for px, kind, rate in sites:
            for y, x in px:
                if kind == "hot":
                    f[y, x] += rate * gain
                elif kind == "stuck":
                    f[y, x] = stuck_level
                else:
                    f[y, x] = 0.0
        raw = np.clip(np.round(f), 0, 255).astype(np.uint8)
        frames.append(np.repeat(raw[..., None], 3, axis=2))
    return frames
