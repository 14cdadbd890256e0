"""Clean base scenes: procedural dead-leaves texture and scikit-image's bundled photos.

Used by the simulated camera (device) and to build training data (train). numpy and
OpenCV only at import time; ``load_photo`` reads scikit-image's photo files with OpenCV
and imports scikit-image itself only as a fallback.
"""
from __future__ import annotations

import numpy as np

from device.errors import InputError

# Clean, textured photographs bundled with scikit-image (they load offline).
# ``clock`` is deliberately absent: it is a real motion-blurred photograph, an
# evaluation example, not a clean base.
PHOTO_NAMES: tuple[str, ...] = (
    "camera", "astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel",
    "coins", "text", "page", "retina", "hubble_deep_field", "immunohistochemistry",
)

# Other bundled images ``load_photo`` accepts by name (not clean bases).
_EXTRA_PHOTOS: tuple[str, ...] = ("clock", "stereo_motorcycle", "moon", "horse", "cat")


def _rng(rng_or_seed) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def dead_leaves(height: int, width: int, rng_or_seed=None, color: bool = True,
                r_min: float = 2.0, r_max: float | None = None,
                coverage: float = 4.0) -> np.ndarray:
    """A dead-leaves texture: occluding discs with power-law radii, uint8 BGR ``(H, W, 3)``.

    Radii follow p(r) ∝ r^-3 between ``r_min`` and ``r_max`` (default a third of the
    shorter side), the scale-invariant law of natural images, so every blur size finds
    edges to act on. Discs are drawn back to front, each occluding the ones before;
    ``coverage`` is the expected number of discs over each pixel, enough that almost
    no background shows through. Each disc gets a random colour (grey if ``color`` is
    False) and a mild linear shading so regions are not perfectly flat.
    """
    import cv2

    if height <= 0 or width <= 0:
        raise InputError(f"dead_leaves: size must be positive, got {height}x{width}")
    rng = _rng(rng_or_seed)
    r_max = float(r_max if r_max is not None else max(r_min * 2, min(height, width) / 3))
    a, b = r_min ** -2, r_max ** -2
    mean_r2 = 2.0 * np.log(r_max / r_min) / (a - b)          # E[r^2] for p(r) ∝ r^-3
    n = int(coverage * height * width / (np.pi * mean_r2)) + 1
    radii = (a - rng.random(n) * (a - b)) ** -0.5
    # Discs may be centred a little outside the frame so the borders are covered too.
    cy = rng.uniform(-0.1 * height, 1.1 * height, n)
    cx = rng.uniform(-0.1 * width, 1.1 * width, n)
    if color:
        cols = rng.integers(0, 256, (n, 3))
    else:
        cols = np.repeat(rng.integers(0, 256, (n, 1)), 3, axis=1)
    shift = 4  # sub-pixel precision for cv2.circle
    img = np.empty((height, width, 3), np.uint8)
    img[:] = cols[0]
    scale = float(1 << shift)
    centres = np.stack([cx, cy], axis=1) * scale
    rads = np.maximum(1, (radii * scale).astype(np.int64)).tolist()
    for (x, y), r, col in zip(centres.astype(np.int64).tolist(), rads, cols.tolist()):
        cv2.circle(img, (x, y), r, col, thickness=-1, lineType=cv2.LINE_AA, shift=shift)
    # A gentle illumination gradient across the frame: real scenes are not evenly lit.
    gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(ang) * gx / max(width, 1) + np.sin(ang) * gy / max(height, 1))
    gain = 1.0 + rng.uniform(0.0, 0.3) * (ramp - ramp.mean())
    out = np.clip(img.astype(np.float32) * gain[..., None], 0, 255)
    return out.astype(np.uint8)


# The files behind the photos, in scikit-image's ``data`` folder: read with OpenCV they
# are the same pixels (a test checks each), without importing scikit-image, SciPy, PIL
# and imageio (45 MB of RSS) into a simulator run.
_PHOTO_FILES = {
    "camera": "camera.png", "astronaut": "astronaut.png", "coffee": "coffee.png",
    "chelsea": "chelsea.png", "rocket": "rocket.jpg", "brick": "brick.png",
    "grass": "grass.png", "gravel": "gravel.png", "coins": "coins.png", "text": "text.png",
    "page": "page.png", "retina": "retina.jpg", "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png", "clock": "clock_motion.png",
    "stereo_motorcycle": "motorcycle_left.png",
}


def _photo_file(name: str):
    """The photo read straight from scikit-image's data folder (BGR), or None."""
    import importlib.util
    import os

    try:
        spec = importlib.util.find_spec("skimage")     # locates, never imports
    except (ImportError, ValueError):
        return None
    if name not in _PHOTO_FILES or spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", _PHOTO_FILES[name])
    if not os.path.isfile(path):
        return None
    import cv2

    from device.common.native import native_stderr_captured

    with native_stderr_captured():       # libpng's iCCP warnings are not errors
        img = cv2.imread(path, cv2.IMREAD_COLOR)
    return img


def load_photo(name: str) -> np.ndarray:
    """A scikit-image bundled photograph by name, as uint8 BGR ``(H, W, 3)``.

    Grey photos are replicated to three channels. Raises ``InputError`` when
    scikit-image is not installed or the name is not a bundled photo.
    """
    known = PHOTO_NAMES + _EXTRA_PHOTOS
    if name not in known:
        raise InputError(f"unknown photo {name!r}; choose one of: {', '.join(PHOTO_NAMES)}")
    img = _photo_file(name)
    if img is not None:
        return img
    try:
        import skimage.data as skdata
    except ImportError:
        raise InputError("scikit-image is not installed, so bundled photos are unavailable "
                         "(pip install scikit-image, or use the dead-leaves scene)") from None
    try:
        img = getattr(skdata, name)()
    except Exception as exc:  # e.g. an image that would need a download, offline
        raise InputError(f"cannot load scikit-image photo {name!r}: {exc}") from None
    if isinstance(img, tuple):  # stereo_motorcycle returns (left, right, disparity)
        img = img[0]
    img = np.asarray(img)
    if img.dtype != np.uint8:
        hi = 1.0 if img.dtype.kind == "f" and float(img.max()) <= 1.0 else 255.0
        img = np.clip(img.astype(np.float32) * (255.0 / hi), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return np.ascontiguousarray(img[:, :, 2::-1])  # RGB(A) -> BGR
    raise InputError(f"scikit-image photo {name!r} has unexpected shape {img.shape}")
