"""The built-in simulated camera and lens.

A real photograph is rendered through a lens model: defocus is a disc PSF whose radius
grows with the distance between the lens position and a hidden best-focus position,
applied in linear light; slight focus breathing changes the magnification with the lens
position; shot and read noise are added after the blur, then the frame goes through a
12-bit ADC and the sRGB curve to 8 bits. Like a real camera, the frame returned by
``read()`` was exposed at the lens position in force at the *previous* read, so an
autofocus must let a frame pass after every move.

``scene=stars`` renders a night sky instead (``device.sources.sky``): stars whose pupil
image grows with the same blur radius, recorded linearly (an astronomer's raw-derived
frame: the sRGB curve would inflate the faint wings the star measures read).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from device.config import SimConfig
from device.errors import InputError, SourceError
from device.common.optics import convolve, disc_psf, linear_to_srgb, srgb_to_linear
from device.sources.base import Frame, FrameSource, now

log = logging.getLogger(__name__)

ADC_LEVELS = 4096
MOSAIC_SCENES = ("astronaut", "coffee", "chelsea", "rocket")
STAR_SCENE = "stars"
_NOISE_MARGIN = 64


def _fit(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover ``width x height`` and centre-crop (keeps the aspect ratio)."""
    h, w = img.shape[:2]
    s = max(width / w, height / h)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    img = cv2.resize(img, (max(width, round(w * s)), max(height, round(h * s))), interpolation=interp)
    y0 = (img.shape[0] - height) // 2
    x0 = (img.shape[1] - width) // 2
    return np.ascontiguousarray(img[y0:y0 + height, x0:x0 + width])


def load_scene(scene: str, width: int, height: int, seed: int) -> np.ndarray:
    """The scene as uint8 BGR at the output size.

    ``mosaic`` (default): four bundled photos in a 2x2 grid, so every part of the frame has
    texture; a bundled photo name; ``dead_leaves``; or a path to an image file. Without
    scikit-image, photo scenes fall back to dead leaves with one log line.
    """
    from device.common import scenes

    if scene == "dead_leaves":
        return scenes.dead_leaves(height, width, seed)
    if scene == "flat":
        return np.full((height, width, 3), 118, np.uint8)
    p = Path(scene)
    if p.suffix and p.exists():
        from device.sources.files import read_image
        from device.common.preprocess import to_bgr

        return _fit(to_bgr(read_image(p)), width, height)
    try:
        if scene == "mosaic":
            hw, hh = width // 2, height // 2
            tiles = [_fit(scenes.load_photo(n), hw, hh) for n in MOSAIC_SCENES]
            top = np.hstack(tiles[:2])
            bottom = np.hstack(tiles[2:])
            return _fit(np.vstack([top, bottom]), width, height)
        if scene in scenes.PHOTO_NAMES:
            return _fit(scenes.load_photo(scene), width, height)
    except InputError as exc:
        if "scikit-image" not in str(exc):
            raise
        log.info("sim: %s; rendering a dead-leaves scene instead", exc)
        return scenes.dead_leaves(height, width, seed)
    raise InputError(f"sim: unknown scene {scene!r} (a bundled photo name, mosaic, dead_leaves, "
                     f"flat, stars, or an image file path)")


class SimCamera(FrameSource):
    """A simulated camera whose lens a (simulated) focus motor can move."""
    live = True

    def __init__(self, cfg: SimConfig = SimConfig(), *, hang_after: Optional[int] = None,
                 fail_after: Optional[int] = None):
        super().__init__()
        self.cfg = cfg
        self.name = f"sim:{cfg.scene}"
        rng = np.random.default_rng(cfg.seed)
        self.lens_range = cfg.lens_range
        self.depth_of_field = float(cfg.depth_of_field)
        self.best_position = float(cfg.best_position if cfg.best_position is not None
                                   else rng.uniform(0.15, 0.85) * cfg.lens_range)
        start = (cfg.start_position if cfg.start_position is not None
                 else rng.uniform(0, cfg.lens_range))
        self._lock = threading.Lock()
        self._position = float(start)
        self._exposed = float(start)
        self._exposed_t = now()             # when the lens was at ``_exposed``
        self._shown = float(start)          # where the newest frame was exposed
        self._sky = None
        if cfg.scene == STAR_SCENE:
            from device.sources.sky import StarSky

            self._sky = StarSky(cfg.sky, cfg.width, cfg.height, cfg.seed)
            self._linear = None
        else:
            self._linear = srgb_to_linear(load_scene(cfg.scene, cfg.width, cfg.height, cfg.seed))
        self._noise = rng.standard_normal(
            (cfg.height + _NOISE_MARGIN, cfg.width + _NOISE_MARGIN, 3)).astype(np.float32)
        self._rng = rng
        self._cache: OrderedDict = OrderedDict()
        self._cache_bytes = 0
        self.cache_limit = int(cfg.cache_mb * 2**20)
        lut = np.arange(ADC_LEVELS, dtype=np.float32) / (ADC_LEVELS - 1)
        if self._sky is None:
            lut = linear_to_srgb(lut)
        self._adc_to_srgb = np.clip(lut * 255.0 + 0.5, 0, 255).astype(np.uint8)
        self._hang_after = hang_after
        self._fail_after = fail_after
        self._wake = threading.Event()
        self._next_t = 0.0
        placed = cfg
        if self._sky is not None:
            placed = dataclasses.replace(cfg, hot_pixels=cfg.hot_pixels + cfg.sky.hot_pixels)
        self.defects = _place_defects(placed, np.random.default_rng(cfg.seed + 7919))
        self._ring_dir = 1.0

    # --- the lens -----------------------------------------------------------------------
    @property
    def lens_position(self) -> float:
        return self._position

    @lens_position.setter
    def lens_position(self, value: float) -> None:
        with self._lock:
            self._position = float(min(max(value, 0.0), self.lens_range))

    @property
    def exposed_position(self) -> float:
        """Where the lens was while the newest frame was exposed (a frame lags the lens)."""
        return self._shown

    def blur_radius(self, position: Optional[float] = None) -> float:
        """Blur-circle radius in pixels: under 1 px within +/- depth_of_field / 2."""
        pos = self._position if position is None else position
        r = abs(pos - self.best_position) / (self.depth_of_field / 2.0)
        return float(min(r, self.cfg.max_blur_px))

    def in_focus(self, position: Optional[float] = None) -> bool:
        pos = self._position if position is None else position
        return abs(pos - self.best_position) <= self.depth_of_field / 2.0

    def truth(self) -> dict:
        return {"lens_position": round(self._position, 3),
                "best_position": round(self.best_position, 3),
                "depth_of_field": self.depth_of_field}

    def info(self) -> dict:
        return {**super().info(), "scene": self.cfg.scene}

    # --- rendering ----------------------------------------------------------------------
    def _optics(self, position: float) -> np.ndarray:
        """The noiseless linear image at a lens position (cached: scenes are static)."""
        radius = round(self.blur_radius(position) * 4) / 4
        mag = 1.0 + self.cfg.breathing * (position - self.best_position) / self.lens_range
        mag = round(mag, 4)
        shift = (0.0, 0.0)
        if self._sky is not None:
            mag = 1.0   # breathing is far below a star's size; drift moves the field instead
            shift = tuple(round(v, 1) for v in self._sky.shift(self._index))
        key = (radius, mag, shift)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        img = self._linear
        if self._sky is not None:
            img = np.repeat(self._sky.linear(radius, shift)[:, :, None], 3, axis=2)
        elif mag != 1.0:
            h, w = img.shape[:2]
            m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, mag)
            img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if self._sky is None:
            img = convolve(img, disc_psf(radius, soft_edge=0.6))
        sigma = np.sqrt(np.maximum(img, 0) / self.cfg.full_well + (self.cfg.read_noise / 255.0) ** 2)
        entry = (img * (ADC_LEVELS - 1), sigma * (ADC_LEVELS - 1))
        self._remember(key, entry)
        return entry

    def _remember(self, key: tuple, entry: tuple) -> None:
        """Keep ``entry`` within ``sim.cache_mb``, dropping the least recently used."""
        size = sum(a.nbytes for a in entry)
        if size > self.cache_limit:
            return
        self._cache[key] = entry
        self._cache_bytes += size
        while self._cache_bytes > self.cache_limit:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= sum(a.nbytes for a in old)

    @property
    def cache_bytes(self) -> int:
        """Bytes of rendered lens positions held now (at most ``sim.cache_mb``)."""
        return self._cache_bytes

    def render(self, position: float) -> np.ndarray:
        """One noisy 8-bit BGR frame at a lens position."""
        signal, sigma = self._optics(position)
        h, w = signal.shape[:2]
        oy, ox = self._rng.integers(0, _NOISE_MARGIN, 2)
        noisy = signal + sigma * self._noise[oy:oy + h, ox:ox + w]
        if self.cfg.exposure != 1.0:
            noisy = (signal * self.cfg.exposure) + sigma_at(signal * self.cfg.exposure, self.cfg) \
                * self._noise[oy:oy + h, ox:ox + w]
        adc = np.clip(noisy, 0, ADC_LEVELS - 1).astype(np.uint16)
        for d in self.defects:   # photosite defects sit after the optics, before the ISP
            adc[d["y"], d["x"]] = d["adc"]
        return self._adc_to_srgb[adc]

    def _read(self) -> Optional[Frame]:
        if self._fail_after is not None and self._index >= self._fail_after:
            raise SourceError(f"{self.name}: simulated camera fault")
        if self._hang_after is not None and self._index >= self._hang_after:
            while not self._closed:      # a hung camera: blocks until closed
                self._wake.wait(0.5)
            return None
        if self.cfg.fps > 0:
            t = time.monotonic()
            if self._next_t > t:
                time.sleep(self._next_t - t)
            self._next_t = max(t, self._next_t) + 1.0 / self.cfg.fps
        with self._lock:
            # The frame shows the lens where it was at the previous read (the statistics
            # lag), so it is stamped with that moment, as a Pi frame carries its sensor
            # timestamp: the time of its exposure, not of its delivery.
            exposed, self._exposed = self._exposed, self._position
            stamp, self._exposed_t = self._exposed_t, now()
            self._shown = exposed
            if self.cfg.ring_speed:
                self._turn_ring()
        color = self.render(exposed)
        grey = cv2.cvtColor(color, cv2.COLOR_BGR2GRAY)
        return Frame(grey=grey, color=color, timestamp=stamp, index=self._next_index())

    def _turn_ring(self) -> None:
        pos = self._position + self._ring_dir * self.cfg.ring_speed
        if not 0 <= pos <= self.lens_range:
            self._ring_dir = -self._ring_dir
            pos = min(max(pos, 0.0), float(self.lens_range))
        self._position = pos

    def _close(self) -> None:
        self._wake.set()
        self._cache.clear()
        self._cache_bytes = 0


def sigma_at(signal_adc: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Shot + read noise (ADC units) for a linear signal in ADC units."""
    lin = np.maximum(signal_adc, 0) / (ADC_LEVELS - 1)
    return np.sqrt(lin / cfg.full_well + (cfg.read_noise / 255.0) ** 2) * (ADC_LEVELS - 1)


def _place_defects(cfg: SimConfig, rng: np.random.Generator) -> list:
    """Fixed defective pixels (all channels, as a sensor without DPC shows them after the
    ISP): hot = near full scale, dead = 0, stuck = a fixed mid level. Kept 3 px apart
    from each other and from the border, so each is one isolated pixel."""
    out, taken = [], set()
    for kind, n in (("hot", cfg.hot_pixels), ("dead", cfg.dead_pixels), ("stuck", cfg.stuck_pixels)):
        placed = tries = 0
        while placed < n and tries < 100 * n:   # a crowded request places what fits
            tries += 1
            y = int(rng.integers(3, cfg.height - 3))
            x = int(rng.integers(3, cfg.width - 3))
            # A 7x7 window lookup, not a scan of every placed pixel: 2000 defects place in
            # milliseconds instead of minutes.
            if any((y + dy, x + dx) in taken for dy in range(-3, 4) for dx in range(-3, 4)):
                continue
            taken.add((y, x))
            level = {"hot": 0.9 + 0.1 * rng.random(), "dead": 0.0,
                     "stuck": 0.25 + 0.3 * rng.random()}[kind]
            out.append({"x": x, "y": y, "kind": kind, "adc": int(level * (ADC_LEVELS - 1))})
            placed += 1
    return out


_SIM_TEST_HOOKS = ("hang_after", "fail_after")


def open_sim(options: dict, cfg: SimConfig) -> SimCamera:
    """``sim:key=value,...`` options override the ``[sim]`` config section."""
    from device.config import build
    from device.config.stars import SkyConfig

    hooks = {k: options.pop(k) for k in list(options) if k in _SIM_TEST_HOOKS}
    base = dataclasses.asdict(cfg)
    sky = {f.name for f in dataclasses.fields(SkyConfig)}
    for k, v in options.items():
        if k in base and k != "sky":
            base[k] = _parse_value(v)
        elif k in sky:   # the star scene's sky: sim:scene=stars,seeing_fwhm=3.5
            base["sky"][k] = _parse_value(v)
        else:
            known = sorted((set(base) - {"sky"}) | sky)
            raise InputError(f"sim: unknown option {k!r} (known: {', '.join(known)})")
    try:
        cfg = build(SimConfig, base, "sim")
    except Exception as exc:
        raise InputError(f"sim: {exc}") from None
    try:
        hooks = {k: int(v) for k, v in hooks.items()}
    except ValueError:
        raise InputError("sim: hang_after and fail_after take a frame count") from None
    return SimCamera(cfg, **hooks)


def _parse_value(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text in ("true", "false"):
        return text == "true"
    return text
