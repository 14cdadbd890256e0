"""What training and inference must agree on: tiling, normalisation, class names.

``train/`` imports everything from here; nothing in this module may import TensorFlow.
All functions take and return numpy arrays so they run unchanged on the Pi.
"""
from __future__ import annotations

import numpy as np

# --- working resolution --------------------------------------------------------------
# The lores stream a Pi scores (long side, short side). Larger images are brought down to
# it before the focus net sees them, in training, evaluation and on the device alike.
WORK_SIZE: tuple[int, int] = (640, 480)


def working_scale(shape: tuple[int, ...]) -> float:
    """Factor (<= 1) that brings an image of ``shape`` down to the working resolution."""
    h, w = shape[:2]
    return min(1.0, WORK_SIZE[0] / max(h, w), WORK_SIZE[1] / min(h, w))


# --- focus net contract -------------------------------------------------------------
FOCUS_CLASSES: tuple[str, ...] = ("sharp", "defocus", "motion")
FOCUS_TILE = 64            # grey tile side, in pixels of the scored (lores) frame
FOCUS_MAX_BLUR_PX = 8.0    # blur-size regression range, pixels at working resolution
# A tile whose grey standard deviation is below this (in 0..255 units) is "flat":
# it carries no blur evidence, so it is neither trained on nor scored.
FLAT_STD = 6.0
# Floor for the per-tile contrast normalisation so that near-flat tiles do not
# amplify sensor noise into fake texture.
MIN_NORM_STD = 8.0
NORM_CLIP = 4.0            # normalised values are clipped to +/- this

# --- defect net contract ------------------------------------------------------------
DEFECT_KINDS: tuple[str, ...] = ("dead", "hot", "stuck")
DEFECT_TILE = 32           # colour (BGR) tile side, pixels of the analysed image
DEFECT_TOLERANCE_PX = 2    # localisation tolerance used for evaluation


def tile_origins(height: int, width: int, tile: int, stride: int | None = None) -> np.ndarray:
    """Top-left corners (y, x) of a regular grid of ``tile``-sized squares.

    The grid is centred so the unused margin is split evenly between the sides.
    Returns an ``(N, 2)`` int array, empty when the image is smaller than a tile.
    """
    if tile <= 0:
        raise ValueError("tile must be positive")
    stride = tile if stride is None else stride
    if stride <= 0:
        raise ValueError("stride must be positive")
    if height < tile or width < tile:
        return np.zeros((0, 2), dtype=np.int64)
    ny = (height - tile) // stride + 1
    nx = (width - tile) // stride + 1
    oy = (height - ((ny - 1) * stride + tile)) // 2
    ox = (width - ((nx - 1) * stride + tile)) // 2
    ys = oy + stride * np.arange(ny)
    xs = ox + stride * np.arange(nx)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.int64)


def extract_tiles(image: np.ndarray, origins: np.ndarray, tile: int) -> np.ndarray:
    """Copy the tiles at ``origins`` out of ``image`` into one ``(N, tile, tile[, C])`` array."""
    out = np.empty((len(origins), tile, tile) + image.shape[2:], dtype=image.dtype)
    for i, (y, x) in enumerate(origins):
        out[i] = image[y:y + tile, x:x + tile]
    return out


def tile_std(tiles: np.ndarray) -> np.ndarray:
    """Per-tile grey standard deviation in 0..255 units, shape ``(N,)``."""
    flat = tiles.reshape(len(tiles), -1).astype(np.float32)
    return flat.std(axis=1)


def textured_mask(tiles: np.ndarray, flat_std: float = FLAT_STD) -> np.ndarray:
    """True for tiles with enough texture to judge focus on."""
    return tile_std(tiles) >= flat_std


def normalize_focus_tiles(tiles: np.ndarray) -> np.ndarray:
    """Grey uint8 tiles ``(N, T, T)`` -> float32 ``(N, T, T, 1)`` for the focus net.

    Each tile is centred on its mean and divided by its standard deviation (floored at
    ``MIN_NORM_STD``), so exposure and contrast changes do not move the prediction
    while very low-contrast tiles keep their low amplitude.
    """
    t = tiles.astype(np.float32)
    if t.ndim == 2:
        t = t[None]
    flat = t.reshape(len(t), -1)
    mean = flat.mean(axis=1)[:, None, None]
    std = np.maximum(flat.std(axis=1), MIN_NORM_STD)[:, None, None]
    out = np.clip((t - mean) / std, -NORM_CLIP, NORM_CLIP)
    return out[..., None]


def normalize_defect_tiles(tiles: np.ndarray) -> np.ndarray:
    """BGR uint8 tiles ``(N, T, T, 3)`` -> float32 in [0, 1] for the defect net.

    Defects are absolute levels (a hot pixel is bright whatever its surroundings), so
    this is a plain scale, not a per-tile normalisation.
    """
    t = tiles.astype(np.float32)
    if t.ndim == 3:
        t = t[None]
    return t * np.float32(1.0 / 255.0)


def grey_plane(image: np.ndarray) -> np.ndarray:
    """Grey, BGR or BGRA (any depth) -> one grey plane in the input's own depth and units."""
    import cv2

    img = image
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code)
    return img


def to_grey(image: np.ndarray) -> np.ndarray:
    """Any OpenCV-readable array (grey, BGR, BGRA, 8 or 16 bit, float) -> grey uint8."""
    img = grey_plane(image)
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        hi = 1.0 if float(np.nanmax(img)) <= 1.0 else 255.0
        return np.clip(img * (255.0 / hi), 0, 255).astype(np.uint8)
    return np.clip(img, 0, 255).astype(np.uint8)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Any OpenCV-readable array -> BGR uint8 (for display, capture and the defect net)."""
    import cv2

    img = image
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = to_grey(img)
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img
