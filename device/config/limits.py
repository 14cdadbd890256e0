"""Bounds on the numbers a config file, a ``run`` flag or a ``sim:`` option may set.

Each section's ``__post_init__`` checks how its values relate to each other; this table only
caps their size, so that no accepted value can exhaust memory, hang start-up or overflow a
timestamp (a 20000x20000 simulated frame took 24 GB; 100,000 simulated hot pixels never
finished placing). ``device.config.convert`` applies it to every key it converts.
"""
from __future__ import annotations

from typing import Optional

_HOUR, _DAY = 3600.0, 86400.0
_STEPS = 10_000_000   # motor steps: 20 m of travel at 0.002 mm/step, far beyond any lens

# key -> (lowest, highest); None leaves that side to the section's own check.
LIMITS: dict[str, tuple[Optional[float], Optional[float]]] = {
    "source.timeout_s": (None, _HOUR),
    "sim.width": (64, 8192),
    "sim.height": (64, 8192),
    "sim.seed": (0, 2 ** 63 - 1),
    "sim.lens_range": (10, _STEPS),
    "sim.best_position": (0, _STEPS),
    "sim.start_position": (0, _STEPS),
    "sim.depth_of_field": (None, _STEPS),
    "sim.max_blur_px": (None, 128),
    "sim.breathing": (-0.5, 0.5),
    "sim.read_noise": (None, 255),
    "sim.full_well": (None, 1e9),
    "sim.fps": (None, 1000),
    "sim.exposure": (None, 100),
    "sim.hot_pixels": (0, 2000),
    "sim.dead_pixels": (0, 2000),
    "sim.stuck_pixels": (0, 2000),
    "sim.ring_speed": (-_STEPS, _STEPS),
    "sim.cache_mb": (0, 4096),
    "picamera2.main_size[0]": (None, 8192),
    "picamera2.main_size[1]": (None, 8192),
    "picamera2.lores_size[0]": (None, 8192),
    "picamera2.lores_size[1]": (None, 8192),
    "models.num_threads": (1, 64),
    "verdict.window_s": (None, _HOUR),
    "verdict.window_frames": (None, 10_000),
    "verdict.strong_rise": (None, 1e6),
    "verdict.curve_weight": (None, 100),
    "motor.min_position": (-_STEPS, _STEPS),
    "motor.max_position": (-_STEPS, _STEPS),
    "motor.speed": (None, 1e6),
    "motor.acceleration": (None, 1e8),
    "motor.backlash_overshoot": (0, _STEPS),
    "motor.idle_release_s": (None, _HOUR),
    "motor.home_travel": (0, 2 * _STEPS),
    "motor.min_angle": (-360, 360),
    "motor.max_angle": (-360, 360),
    "motor.min_pulse_width": (None, 0.1),
    "motor.max_pulse_width": (None, 0.1),
    "motor.sim_backlash": (0, _STEPS),
    "motor.sim_speed": (None, 1e6),
    "motor.sim_acceleration": (None, 1e8),
    "autofocus.coarse_step": (0, _STEPS),
    "autofocus.fine_step": (0, _STEPS),
    "autofocus.min_rise": (None, 1000),
    "autofocus.settle_frames": (0, 1000),
    "autofocus.average_frames": (1, 1000),
    "autofocus.retrigger_delay": (1, 100_000),
    "autofocus.timeout_frames": (10, 1_000_000),
    "autofocus.blur_steps_per_px": (None, _STEPS),
    "service.max_source_failures": (1, 1_000_000),
    "service.retry_backoff_s": (None, _HOUR),
    "service.retry_backoff_max_s": (None, _HOUR),
    "service.status_interval_s": (None, _HOUR),
    "capture.strong_rise": (None, 1e6),
    "capture.history_frames": (3, 100_000),
    "capture.confirm_frames": (1, 100_000),
    "capture.cooldown_s": (0, _DAY),
    "capture.max_files": (1, 10_000_000),
    "capture.min_free_mb": (0, 1e9),
    "defects.min_scene_changes": (1, 100_000),
    "defects.threshold": (None, 255),
    "defects.spread_gain": (0, 100),
    "defects.min_hits": (1, 100_000),
    "defects.scene_change": (0, 255),
    "defects.every_n_frames": (1, 100_000),
    "defects.save_interval_s": (None, _DAY),
    "overlay.peaking_noise_k": (None, 1000),
    "overlay.peaking_memory_s": (None, _DAY),
    "web.max_width": (160, 8192),
    "input.max_image_pixels": (10_000, 1_000_000_000),
}


def check_range(key: str, value: float) -> None:
    """ConfigError if ``value`` of ``key`` lies outside its bounds (keys without bounds pass)."""
    bounds = LIMITS.get(key)
    if bounds is None:
        return
    lo, hi = bounds
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        from device.errors import ConfigError

        if lo is None:
            want = f"be <= {_fmt(hi)}"
        elif hi is None:
            want = f"be >= {_fmt(lo)}"
        else:
            want = f"lie in {_fmt(lo)}..{_fmt(hi)}"
        raise ConfigError(f"{key} must {want}, got {value!r}")


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)
