"""Config sections for focusing on stars (issue 16): ``[stars]`` (detection and the star
autofocus's V-curve, see ``device.scoring.stars`` and ``device.lens.vcurve``) and
``[sim.sky]`` (the simulated star field of ``--source sim:scene=stars``)."""
from __future__ import annotations

from dataclasses import dataclass

from device.errors import ConfigError


@dataclass(frozen=True)
class StarsConfig:
    """Star detection and the star autofocus (steps are motor steps)."""
    k_sigma: float = 5.0            # detection threshold above the sky, in noise sigmas
    min_area: int = 3               # pixels above threshold (4x4-binned) for a detection
    tile: int = 128                 # background tile size, frame pixels (> a donut)
    saturation: float = 0.0         # peak at or above this is saturated; 0: 98% of full scale
    af_step: int = 0                # V-curve step; 0: the simulated depth of field, else 20
    af_out_steps: int = 4           # V-curve samples on each side of the minimum
    af_frames: int = 2              # frames averaged per V-curve position (poor seeing: more)
    min_r2: float = 0.8             # hyperbola fits below this are rejected
    min_stars: int = 1              # fewer detected stars than this is "no stars found"

    def __post_init__(self):
        if self.k_sigma <= 0:
            raise ConfigError("stars.k_sigma must be > 0")
        if self.min_area < 1 or self.tile < 16:
            raise ConfigError("stars.min_area must be >= 1 and stars.tile >= 16")
        if self.saturation < 0:
            raise ConfigError("stars.saturation must be >= 0")
        if self.af_step < 0 or self.af_out_steps < 2 or self.af_frames < 1:
            raise ConfigError("stars.af_step must be >= 0, af_out_steps >= 2, af_frames >= 1")
        if not 0 < self.min_r2 <= 1:
            raise ConfigError("stars.min_r2 must lie in (0, 1]")
        if self.min_stars < 1:
            raise ConfigError("stars.min_stars must be >= 1")


@dataclass(frozen=True)
class SkyConfig:
    """The simulated night sky (``sim:scene=stars``); brightness is linear, 1 = full scale."""
    stars: int = 60                 # point sources in the frame
    seeing_fwhm: float = 2.6        # px, the Moffat seeing profile in focus
    moffat_beta: float = 4.765      # Trujillo et al. 2001: atmospheric turbulence
    obstruction: float = 0.35       # central obstruction / aperture diameter (0: refractor)
    sky: float = 0.03               # sky background level
    min_peak: float = 0.05          # in-focus peak of the faintest star above the sky
    max_peak: float = 0.8           # ... and of the brightest
    drift: float = 0.0              # px per frame the field drifts (poor tracking)
    hot_pixels: int = 4             # added to sim.hot_pixels for the star scene
    clouds: float = 0.0             # 0..1: share of starlight a passing cloud takes away

    def __post_init__(self):
        if self.stars < 0:
            raise ConfigError("sim.sky.stars must be >= 0")
        if self.seeing_fwhm <= 0 or self.moffat_beta <= 1:
            raise ConfigError("sim.sky.seeing_fwhm must be > 0 and moffat_beta > 1")
        if not 0 <= self.obstruction < 1:
            raise ConfigError("sim.sky.obstruction must lie in [0, 1)")
        if not 0 <= self.sky < 1 or not 0 < self.min_peak <= self.max_peak:
            raise ConfigError("sim.sky.sky must lie in [0, 1) and 0 < min_peak <= max_peak")
        if self.hot_pixels < 0 or not 0 <= self.clouds <= 1:
            raise ConfigError("sim.sky.hot_pixels must be >= 0 and clouds in [0, 1]")
