"""Physically modelled degradations, each with its amount returned as a label.

The camera model, in order (what a Pi frame goes through):

1. exposure: scale in linear light (how much light reached the sensor);
2. blur in linear light: defocus (soft, mildly aberrated pillbox), linear motion, or a
   short random camera-shake trajectory (``device.common.optics`` PSFs);
3. sensor noise on the blurred linear signal: Poisson-like shot noise (variance ∝ signal)
   plus Gaussian read noise;
4. sRGB encoding, a contrast/tone tweak, optional ISP-style sharpening;
5. JPEG at a random quality (the MJPEG stream and video files carry it).

Pixel defects are injected into a Bayer mosaic (RGGB) of the clean image, which is then
demosaiced with OpenCV (and optionally JPEG'd), or painted as plain single pixels into
the RGB image (the video-file case). Every function takes an explicit
``numpy.random.Generator`` so datasets are reproducible from one seed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from device.common.optics import convolve, disc_psf, line_psf, linear_to_srgb, quantise_u8, srgb_to_linear
from device.common.preprocess import DEFECT_KINDS, FOCUS_CLASSES, FOCUS_MAX_BLUR_PX

# Class boundaries in blur pixels. Sharp images get a sub-pixel residual blur at most;
# blurred ones at least MIN_BLUR_PX, so the classes are separable by construction and
# the gap between them is not a region of made-up labels.
SHARP_MAX_PX = 0.6
MIN_BLUR_PX = 1.5


# --------------------------------------------------------------------------- PSFs
def shake_psf(extent: float, rng: np.random.Generator, steps: int = 48) -> np.ndarray:
    """A short random camera-shake trajectory rendered as a PSF whose points lie within
    ``extent`` px of its centre (the trajectory's half-size, the ``blur_px`` label).

    The path is a random walk with momentum (hand tremor), rescaled so its largest
    distance from its centroid is ``extent``; samples are splatted bilinearly, so the PSF
    is anti-aliased and sums to 1.
    """
    if extent < 0.5:
        return np.ones((1, 1), np.float32)
    vel = rng.normal(size=2)
    pts = np.zeros((steps, 2))
    for i in range(1, steps):
        vel = 0.8 * vel + 0.6 * rng.normal(size=2)
        pts[i] = pts[i - 1] + vel
    pts -= pts.mean(axis=0)
    r = np.max(np.hypot(pts[:, 0], pts[:, 1]))
    pts *= extent / max(r, 1e-6)
    # Dwell time varies along the path: a shake slows down at its turning points.
    w = rng.uniform(0.5, 1.5, steps)
    # Densify so consecutive samples are < 0.5 px apart.
    seg = np.maximum(1, np.ceil(np.hypot(*np.diff(pts, axis=0).T) / 0.4)).astype(int)
    dense, dw = [pts[:1]], [w[:1]]
    for i, n in enumerate(seg):
        t = (np.arange(1, n + 1) / n)[:, None]
        dense.append(pts[i] + t * (pts[i + 1] - pts[i]))
        dw.append(w[i] + t[:, 0] * (w[i + 1] - w[i]))
    pts, w = np.concatenate(dense), np.concatenate(dw)
    half = int(np.ceil(extent)) + 2
    k = np.zeros((2 * half + 1, 2 * half + 1), np.float64)
    x, y = pts[:, 0] + half, pts[:, 1] + half
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dy, dx, ww in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                       (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (y0 + dy, x0 + dx), w * ww)
    return (k / k.sum()).astype(np.float32)


@dataclass
class FocusLabel:
    """What was done to a focus sample. ``blur_px`` is the regression target: disc radius
    for defocus, half the trajectory length/extent for motion and shake, 0 for sharp."""
    cls: str = "sharp"
    blur_px: float = 0.0
    kind: str = "none"            # none | disc | line | shake
    angle: float = 0.0
    exposure: float = 1.0
    photons: float = 0.0          # photons at full scale (shot noise); 0 = noiseless
    read_noise: float = 0.0       # linear units
    contrast: float = 1.0
    sharpen: float = 0.0
    jpeg_quality: int = 0         # 0 = no JPEG

    @property
    def class_index(self) -> int:
        return FOCUS_CLASSES.index(self.cls)

    def as_dict(self) -> dict:
        return asdict(self)


def focus_psf(cls: str, amount: float, rng: np.random.Generator, label: FocusLabel) -> np.ndarray:
    """The PSF of class ``cls`` with size ``amount`` px, varied in shape; fills ``label``."""
    if cls == "defocus":
        label.kind = "disc"
        label.angle = float(rng.uniform(0, np.pi))
        return disc_psf(amount, soft_edge=float(rng.uniform(0.3, 1.2)),
                        aberration=float(rng.uniform(0.0, 0.15)), angle=label.angle)
    if cls == "motion":
        label.angle = float(rng.uniform(0, np.pi))
        if rng.random() < 0.65:
            label.kind = "line"
            return line_psf(2.0 * amount, label.angle, width=float(rng.uniform(1.0, 1.6)))
        label.kind = "shake"
        return shake_psf(amount, rng)
    # sharp: a sub-pixel residual blur (a lens is never perfect)
    label.kind = "none"
    return disc_psf(amount, soft_edge=float(rng.uniform(0.3, 1.0))) if amount >= 0.5 else np.ones((1, 1), np.float32)


def add_sensor_noise(lin: np.ndarray, photons: float, read_noise: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Shot noise (Gaussian approximation of Poisson, variance = signal / photons) plus read
    noise, on a linear image in [0, 1]. ``photons`` is the full-well count at full scale."""
    out = lin.astype(np.float32, copy=True)
    var = np.zeros_like(out)
    if photons > 0:
        var += np.clip(out, 0, None) / np.float32(photons)
    if read_noise > 0:
        var += np.float32(read_noise) ** 2
    if photons > 0 or read_noise > 0:
        out += np.sqrt(var) * rng.standard_normal(out.shape, dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def jpeg(img_u8: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG at ``quality`` (1..100)."""
    ok, buf = cv2.imencode(".jpg", img_u8, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    flag = cv2.IMREAD_COLOR if img_u8.ndim == 3 else cv2.IMREAD_GRAYSCALE
    return cv2.imdecode(buf, flag)


def tone(srgb: np.ndarray, contrast: float) -> np.ndarray:
    """Contrast change about mid-grey in the encoded domain (an S/anti-S tone tweak)."""
    return np.clip(0.5 + (srgb - 0.5) * np.float32(contrast), 0.0, 1.0)


def unsharp(img_f: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    if amount <= 0:
        return img_f
    low = cv2.GaussianBlur(img_f, (0, 0), sigma)
    return np.clip(img_f + np.float32(amount) * (img_f - low), 0.0, 1.0)


def sample_focus_label(rng: np.random.Generator, cls: str | None = None,
                       max_blur: float = FOCUS_MAX_BLUR_PX) -> FocusLabel:
    """Draw a class (uniform unless given), a blur size and the nuisance degradations."""
    cls = cls or FOCUS_CLASSES[int(rng.integers(len(FOCUS_CLASSES)))]
    lab = FocusLabel(cls=cls)
    if cls == "sharp":
        lab.blur_px = float(rng.uniform(0.0, SHARP_MAX_PX))
    else:
        # Log-uniform-ish: small blurs (the hard, useful cases near focus) are common.
        lab.blur_px = float(np.exp(rng.uniform(np.log(MIN_BLUR_PX), np.log(max_blur))))
    lab.exposure = float(np.exp(rng.uniform(np.log(0.35), np.log(1.6))))
    if rng.random() < 0.85:
        # At the working resolution a pixel bins many photosites (a 640-px lores frame of a
        # 4056-px sensor averages ~40), so even at high gain the effective full-scale photon
        # count is in the thousands; the low end here is a dim, high-gain frame.
        lab.photons = float(np.exp(rng.uniform(np.log(600.0), np.log(40000.0))))
        lab.read_noise = float(rng.uniform(0.0, 0.004))
    lab.contrast = float(rng.uniform(0.6, 1.3))
    lab.sharpen = float(rng.uniform(0.0, 1.2)) if rng.random() < 0.5 else 0.0
    lab.jpeg_quality = int(rng.integers(50, 98)) if rng.random() < 0.75 else 0
    return lab


def degrade_focus(img_bgr: np.ndarray, lab: FocusLabel, rng: np.random.Generator) -> np.ndarray:
    """Apply ``lab``'s camera model to a clean uint8 image (BGR or grey); same shape out."""
    lin = srgb_to_linear(img_bgr) * np.float32(lab.exposure)
    psf = focus_psf(lab.cls, lab.blur_px, rng, lab)
    lin = convolve(lin, psf)
    # Mixed blur: a real "defocused" frame often carries a little shake and vice versa,
    # kept below the sharp threshold so it never changes the label.
    if lab.cls != "sharp" and rng.random() < 0.3:
        lin = convolve(lin, line_psf(float(rng.uniform(0.0, 2 * SHARP_MAX_PX)), float(rng.uniform(0, np.pi))))
    lin = add_sensor_noise(lin, lab.photons, lab.read_noise, rng)
    srgb = tone(linear_to_srgb(lin), lab.contrast)
    srgb = unsharp(srgb, lab.sharpen)
    out = quantise_u8(srgb)
    if lab.jpeg_quality:
        out = jpeg(out, lab.jpeg_quality)
    return out


def shake_real_tile(tile_u8: np.ndarray, rng: np.random.Generator, max_blur: float = FOCUS_MAX_BLUR_PX,
                    shake_share: float = 0.7) -> tuple[np.ndarray, FocusLabel]:
    """A real sharp tile (the camera's own noise, tone and JPEG already in it) turned into a
    ``motion`` example: a shake trajectory (``shake_share`` of the time, else a line) in
    linear light, fresh sensor noise (the blur averages the old noise away) and JPEG.

    The tile is reflect-padded by the PSF's reach so its borders see the same blur as its
    centre; no tone or sharpening pass, since the camera already applied its own.
    """
    lab = sample_focus_label(rng, "motion", max_blur)
    lab.angle = float(rng.uniform(0, np.pi))
    if rng.random() < shake_share:
        lab.kind = "shake"
        psf = shake_psf(lab.blur_px, rng)
    else:
        lab.kind = "line"
        psf = line_psf(2.0 * lab.blur_px, lab.angle, width=float(rng.uniform(1.0, 1.6)))
    lab.exposure, lab.contrast, lab.sharpen = 1.0, 1.0, 0.0
    pad = psf.shape[0] // 2 + 2
    big = cv2.copyMakeBorder(tile_u8, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    lin = add_sensor_noise(convolve(srgb_to_linear(big), psf), lab.photons, lab.read_noise, rng)
    out = quantise_u8(linear_to_srgb(lin))
    if lab.jpeg_quality:
        out = jpeg(out, lab.jpeg_quality)
    return out[pad:pad + tile_u8.shape[0], pad:pad + tile_u8.shape[1]], lab


# --------------------------------------------------------------------------- defects
BAYER_TO_BGR = cv2.COLOR_BayerBG2BGR  # OpenCV's name for our RGGB layout (R at (0, 0))
_DEMOSAIC = (cv2.COLOR_BayerBG2BGR, cv2.COLOR_BayerBG2BGR_EA, cv2.COLOR_BayerBG2BGR_VNG)
# Photosite colour (BGR channel index) for an RGGB mosaic at (y % 2, x % 2).
_BAYER_CHANNEL = np.array([[2, 1], [1, 0]])
# A defect counts (is labelled) only if it moves its photosite/pixel by at least this
# much (0..255): a dead photosite under a black sky is invisible and unlabelable.
MIN_DEFECT_CONTRAST = 60


def mosaic(img_bgr: np.ndarray) -> np.ndarray:
    """uint8 BGR -> uint8 RGGB Bayer mosaic (one sample per photosite)."""
    h, w = img_bgr.shape[:2]
    ch = np.tile(_BAYER_CHANNEL, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
    return np.take_along_axis(img_bgr, ch[..., None], axis=2)[..., 0]


def demosaic(bayer: np.ndarray, method: int = 0) -> np.ndarray:
    """RGGB mosaic -> BGR with one of OpenCV's demosaicers (0 bilinear, 1 EA, 2 VNG)."""
    return cv2.cvtColor(bayer, _DEMOSAIC[method])


def _defect_value(kind: str, rng: np.random.Generator) -> int:
    if kind == "dead":
        return int(rng.integers(0, 12))
    if kind == "hot":
        return int(rng.integers(235, 256))
    return int(rng.integers(70, 200))  # stuck: a fixed mid level


def _rgb_defect_value(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "dead":
        return rng.integers(0, 12, 3)
    if kind == "hot":
        return rng.integers(235, 256, 3)
    col = np.zeros(3, np.int64)          # stuck: one saturated primary (or two)
    col[int(rng.integers(3))] = 255
    if rng.random() < 0.25:
        col[int(rng.integers(3))] = 255
    return col


def _cluster_offsets(rng: np.random.Generator, max_size: int) -> np.ndarray:
    """1 photosite, or a small connected cluster of up to ``max_size`` within 3x3."""
    n = 1 if max_size <= 1 or rng.random() < 0.6 else int(rng.integers(2, max_size + 1))
    offs = [(0, 0)]
    while len(offs) < n:
        y, x = offs[int(rng.integers(len(offs)))]
        dy, dx = [(0, 1), (1, 0), (0, -1), (-1, 0)][int(rng.integers(4))]
        cand = (y + dy, x + dx)
        if cand not in offs and abs(cand[0]) <= 1 and abs(cand[1]) <= 1:
            offs.append(cand)
    return np.array(offs)


@dataclass
class DefectLabel:
    """Defects put into one image: centres (y, x), kinds, and how the image was made."""
    centres: list = field(default_factory=list)
    kinds: list = field(default_factory=list)
    mode: str = "bayer"           # bayer | rgb
    demosaic: int = 0
    jpeg_quality: int = 0


def inject_defects(img_bgr: np.ndarray, n_defects: int, rng: np.random.Generator,
                   mode: str = "bayer", jpeg_quality: int = 0, demosaic_method: int | None = None,
                   max_cluster: int = 3, margin: int = 2,
                   ) -> tuple[np.ndarray, np.ndarray, DefectLabel]:
    """Inject up to ``n_defects`` visible defects into a clean uint8 BGR image.

    ``mode="bayer"``: photosites of an RGGB mosaic are forced to a dead/hot/stuck level
    (singles or clusters), then the mosaic is demosaiced (seen as a small coloured blob),
    then optionally JPEG'd. ``mode="rgb"``: whole RGB pixels are painted (the seed's video
    case). Returns ``(image, mask, label)`` where ``mask`` is ``(H, W, len(DEFECT_KINDS))``
    uint8 with 1 on the defective photosites/pixels of each kind. Defects that would not
    change their site by ``MIN_DEFECT_CONTRAST`` are not placed (they are invisible).
    """
    h, w = img_bgr.shape[:2]
    mask = np.zeros((h, w, len(DEFECT_KINDS)), np.uint8)
    lab = DefectLabel(mode=mode, jpeg_quality=int(jpeg_quality))
    taken = np.zeros((h, w), bool)
    if mode == "bayer":
        work = mosaic(img_bgr).copy()
        ref = work
    else:
        work = img_bgr.copy()
        ref = img_bgr
    tries = 0
    while len(lab.centres) < n_defects and tries < 20 * max(n_defects, 1):
        tries += 1
        kind = DEFECT_KINDS[int(rng.integers(len(DEFECT_KINDS)))]
        cy = int(rng.integers(margin + 1, h - margin - 1))
        cx = int(rng.integers(margin + 1, w - margin - 1))
        if taken[max(0, cy - 5):cy + 6, max(0, cx - 5):cx + 6].any():
            continue  # keep defects apart so each is one detection
        offs = _cluster_offsets(rng, max_cluster if mode == "bayer" else 1)
        ys, xs = cy + offs[:, 0], cx + offs[:, 1]
        if mode == "bayer":
            val = _defect_value(kind, rng)
            if np.max(np.abs(ref[ys, xs].astype(int) - val)) < MIN_DEFECT_CONTRAST:
                continue
            work[ys, xs] = val
        else:
            col = _rgb_defect_value(kind, rng)
            if np.max(np.abs(ref[ys, xs].astype(int) - col)) < MIN_DEFECT_CONTRAST:
                continue
            work[ys, xs] = col
        mask[ys, xs, DEFECT_KINDS.index(kind)] = 1
        taken[ys, xs] = True
        lab.centres.append((float(ys.mean()), float(xs.mean())))
        lab.kinds.append(kind)
    if mode == "bayer":
        lab.demosaic = int(rng.integers(len(_DEMOSAIC))) if demosaic_method is None else int(demosaic_method)
        out = demosaic(work, lab.demosaic)
    else:
        out = work
    if jpeg_quality:
        out = jpeg(out, jpeg_quality)
    return out, mask, lab


def defect_heatmap_target(mask: np.ndarray) -> np.ndarray:
    """Per-pixel training target from a defect mask: each defective site and its 8
    neighbours (the blob a demosaicer spreads it into) -> float32 in {0, 1}."""
    k = np.ones((3, 3), np.uint8)
    return np.stack([cv2.dilate(mask[..., c], k) for c in range(mask.shape[-1])], axis=-1).astype(np.float32)


def microscope_like(img_bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A photo made to look like a microscope or telescope frame, the defect check's
    hardest content: large smooth areas and soft edges (a wide blur), a vignette,
    lateral colour fringes (red and blue planes shifted by a pixel or two) and faint
    banding (rows or columns of slightly different gain). Each is drawn independently,
    so the net sees them alone and together; a defect is injected afterwards, in the
    mosaic, so it stays one sharp photosite on this soft base."""
    h, w = img_bgr.shape[:2]
    out = img_bgr.astype(np.float32)
    if rng.random() < 0.8:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(1.5, 6.0)))
    if rng.random() < 0.6:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((yy - rng.uniform(0, h)) ** 2 + (xx - rng.uniform(0, w)) ** 2) / float(max(h, w) ** 2)
        out *= np.clip(1.0 - float(rng.uniform(0.3, 1.2)) * r2, 0.15, 1.0)[..., None]
    if rng.random() < 0.5:
        for c, sign in ((0, -1), (2, 1)):   # blue one way, red the other
            d = sign * float(rng.uniform(0.5, 2.0))
            m = np.float32([[1, 0, d], [0, 1, d * float(rng.uniform(-1, 1))]])
            out[..., c] = cv2.warpAffine(out[..., c], m, (w, h), borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.4:
        n = h if rng.random() < 0.5 else w
        period = float(rng.uniform(3, 40))
        gain = 1.0 + float(rng.uniform(0.01, 0.06)) * np.sin(2 * np.pi * np.arange(n) / period
                                                           + rng.uniform(0, 2 * np.pi))
        out *= gain[:, None, None] if n == h else gain[None, :, None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
