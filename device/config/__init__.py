"""Configuration: TOML file -> validated, frozen dataclasses. The one place that does it.

Every section is a frozen dataclass; ``load_config`` rejects unknown keys and wrong
types with a ``ConfigError`` that names the key (``scoring.roi``, say). Every section is
a field of ``Config`` so that a typo anywhere fails loudly, once, at startup; a new
feature's section may live in its own module of this package. The conversion itself is
in ``convert``.
"""
from __future__ import annotations

import os
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from device.common.listen import check_token, parse_listen
from device.common import paths
from device.common.roi import Roi, parse_roi
from device.config.bracket import BracketConfig
from device.config.inspect import InspectConfig
from device.config.convert import build, merge
from device.config.inputs import InputConfig
from device.config.stars import SkyConfig, StarsConfig
from device.config.verdict import VerdictConfig
from device.config.tomlfile import read_toml
from device.errors import ConfigError

@dataclass(frozen=True)
class SourceConfig:
    spec: str = "auto"
    # A live source that yields nothing for this long is a camera fault.
    timeout_s: float = 5.0

    def __post_init__(self):
        if not self.spec:
            raise ConfigError("source.spec must not be empty")
        if self.timeout_s <= 0:
            raise ConfigError("source.timeout_s must be > 0")


@dataclass(frozen=True)
class SimConfig:
    """The built-in simulated camera and lens (see ``device.sources.sim``)."""
    scene: str = "mosaic"
    width: int = 640
    height: int = 480
    seed: int = 0
    lens_range: int = 1000          # lens positions run 0..lens_range (motor steps)
    best_position: Optional[float] = None   # None: drawn from the seed
    start_position: Optional[float] = None  # None: drawn from the seed
    depth_of_field: float = 20.0    # steps within which the blur circle stays under 1 px
    max_blur_px: float = 24.0
    breathing: float = 0.02         # relative magnification change over the whole range
    read_noise: float = 2.0         # electrons-equivalent, in 8-bit units at mid grey
    full_well: float = 400.0        # higher = less shot noise
    fps: float = 0.0                # 0: render as fast as asked; >0 paces like a camera
    exposure: float = 1.0           # scales the light; 0 = lens capped (dark frames)
    hot_pixels: int = 0             # sensor defects at seeded fixed positions (defect checks)
    dead_pixels: int = 0
    stuck_pixels: int = 0
    # Steps per frame the lens turns by itself, bouncing at the ends: a person turning the
    # focus ring by hand (for capture-when-sharp and viewfinder demos). 0: it stays put.
    ring_speed: float = 0.0
    # MB of rendered lens positions kept (7.4 MB each at 640x480); a Pi Zero 2 W has 512 MB
    # for everything. 0: render every frame afresh.
    cache_mb: float = 32.0
    sky: SkyConfig = field(default_factory=SkyConfig)   # scene = "stars" (issue 16)

    def __post_init__(self):
        if self.width < 64 or self.height < 64:
            raise ConfigError("sim.width and sim.height must be at least 64")
        if self.lens_range < 10:
            raise ConfigError("sim.lens_range must be at least 10")
        if self.depth_of_field <= 0:
            raise ConfigError("sim.depth_of_field must be > 0")
        if self.max_blur_px <= 0:
            raise ConfigError("sim.max_blur_px must be > 0")
        if self.read_noise < 0 or self.full_well <= 0:
            raise ConfigError("sim.read_noise must be >= 0 and sim.full_well > 0")
        if self.fps < 0:
            raise ConfigError("sim.fps must be >= 0")
        if self.exposure < 0:
            raise ConfigError("sim.exposure must be >= 0")
        if min(self.hot_pixels, self.dead_pixels, self.stuck_pixels) < 0:
            raise ConfigError("sim.hot_pixels, dead_pixels and stuck_pixels must be >= 0")
        for name in ("best_position", "start_position"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= self.lens_range:
                raise ConfigError(f"sim.{name} must lie in 0..sim.lens_range")


@dataclass(frozen=True)
class PicameraConfig:
    main_size: tuple[int, int] = (2028, 1520)   # displayed and captured stream
    lores_size: tuple[int, int] = (640, 480)    # scored stream (YUV420, Y plane)

    def __post_init__(self):
        for name in ("main_size", "lores_size"):
            w, h = getattr(self, name)
            if w <= 0 or h <= 0 or w % 2 or h % 2:
                raise ConfigError(f"picamera2.{name} must be two positive even integers")
        if self.lores_size[0] > self.main_size[0] or self.lores_size[1] > self.main_size[1]:
            raise ConfigError("picamera2.lores_size must not exceed picamera2.main_size")


@dataclass(frozen=True)
class ScoringConfig:
    roi: Optional[Roi] = None
    tile_grid: tuple[int, int] = (6, 8)   # rows, cols of the focus map

    def __post_init__(self):
        if self.roi is not None:
            object.__setattr__(self, "roi", parse_roi(self.roi))
        r, c = self.tile_grid
        if r < 1 or c < 1 or r > 64 or c > 64:
            raise ConfigError("scoring.tile_grid must be two integers in 1..64")


LogLevel = typing.Literal["debug", "info", "warning", "error"]
LOG_LEVELS: tuple[str, ...] = typing.get_args(LogLevel)


@dataclass(frozen=True)
class LogConfig:
    jsonl: Optional[str] = None
    level: LogLevel = "info"

    def __post_init__(self):
        if self.level not in LOG_LEVELS:
            raise ConfigError(f"log.level must be one of {', '.join(LOG_LEVELS)}")


FocusThread = typing.Literal["auto", "frame", "worker"]


@dataclass(frozen=True)
class ModelsConfig:
    """The int8 TFLite models (see ``device.scoring.inference``). ``None`` paths mean the shipped
    ``models/focus.tflite`` and ``models/defects.tflite``."""
    focus: Optional[str] = None
    defects: Optional[str] = None
    # LiteRT's own default is 1 thread; a Pi has 4 cores to use.
    num_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    enable_focus: bool = True
    enable_defects: bool = True
    # Where the focus net runs in ``run``: "frame" (each result judges its own frame),
    # "worker" (its own thread, on the newest frame: results carry the latest verdict,
    # a frame or two old), "auto" (worker on cameras, frame on files and the simulator).
    focus_thread: FocusThread = "auto"

    def __post_init__(self):
        if self.num_threads < 1:
            raise ConfigError("models.num_threads must be >= 1")
        for name in ("focus", "defects"):
            if getattr(self, name) == "":
                raise ConfigError(f"models.{name} must not be empty (omit it for the shipped model)")


MotorDriver = typing.Literal["sim", "stepdir", "uln2003", "servo"]
AutofocusMode = typing.Literal["once", "continuous"]
MOTOR_DRIVERS: tuple[str, ...] = typing.get_args(MotorDriver)
AUTOFOCUS_MODES: tuple[str, ...] = typing.get_args(AutofocusMode)
AF_MEASURES: tuple[str, ...] = ("focus", "hfr", "fwhm")


@dataclass(frozen=True)
class MotorConfig:
    """The focus motor (see ``device.lens.motor``). Positions are in motor steps (one STEP pulse,
    one ULN2003 half-step, or one servo unit); the soft limits bound every move."""
    enabled: bool = False               # drive the motor in ``run`` (``--motor`` sets it)
    driver: MotorDriver = "sim"
    min_position: int = 0               # soft limits, inclusive
    max_position: int = 1000
    speed: float = 600.0                # steps/s at cruise (gentle enough for a 28BYJ-48)
    acceleration: float = 3000.0        # steps/s^2; 0 = start and stop at full speed
    approach: str = "up"                # direction of every final approach (backlash)
    backlash_overshoot: int = 30        # steps past the target before approaching it
    release_when_idle: bool = True      # de-energise after idle_release_s without a move
    idle_release_s: float = 1.0
    position_file: Optional[str] = None  # None: $STATE_DIRECTORY or ~/.local/state/focus-assist
    home_travel: int = 0                # motor home: steps driven down to the stop (0: range+10%)
    home_pin: Optional[int | str] = None  # optional limit switch closed at the lower stop
    # stepdir (A4988, DRV8825, TMC2208)
    chip: str = "a4988"
    step_pin: Optional[int | str] = None
    dir_pin: Optional[int | str] = None
    enable_pin: Optional[int | str] = None
    enable_active_low: bool = True      # all three chips enable on a low EN pin
    dir_invert: bool = False
    microsteps: int = 1
    microstep_pins: tuple[int | str, ...] = ()  # MS1.. / MODE0..; empty: set by jumpers
    # uln2003 (28BYJ-48, half-stepping)
    coil_pins: tuple[int | str, ...] = ()       # IN1..IN4
    # servo (AngularServo on a follow-focus gear)
    servo_pin: Optional[int | str] = None
    min_angle: float = -90.0            # angle at min_position
    max_angle: float = 90.0             # angle at max_position
    min_pulse_width: float = 0.0005
    max_pulse_width: float = 0.0025
    # sim: a NEMA17-class stepper (800 steps/rev) with its own gear play
    sim_backlash: int = 12              # steps lost after each direction reversal
    sim_speed: float = 3000.0           # steps/s (3.75 rev/s)
    sim_acceleration: float = 100000.0  # steps/s^2 (125 rev/s^2, less than 3D printers ask)

    def __post_init__(self):
        if self.driver not in ("sim", "stepdir", "uln2003", "servo"):
            raise ConfigError("motor.driver must be one of sim, stepdir, uln2003, servo")
        if self.min_position >= self.max_position:
            raise ConfigError("motor.min_position must be below motor.max_position")
        if self.speed <= 0 or self.acceleration < 0 or self.sim_speed <= 0 \
                or self.sim_acceleration < 0:
            raise ConfigError("motor.speed and sim_speed must be > 0, "
                              "acceleration and sim_acceleration >= 0")
        if self.approach not in ("up", "down"):
            raise ConfigError("motor.approach must be 'up' or 'down'")
        if self.backlash_overshoot < 0 or self.sim_backlash < 0 or self.home_travel < 0:
            raise ConfigError("motor.backlash_overshoot, sim_backlash and home_travel must be >= 0")
        if self.idle_release_s < 0:
            raise ConfigError("motor.idle_release_s must be >= 0")
        if self.chip not in ("a4988", "drv8825", "tmc2208"):
            raise ConfigError("motor.chip must be one of a4988, drv8825, tmc2208")
        if self.microsteps not in (1, 2, 4, 8, 16, 32):
            raise ConfigError("motor.microsteps must be one of 1, 2, 4, 8, 16, 32")
        if self.coil_pins and len(self.coil_pins) != 4:
            raise ConfigError("motor.coil_pins must list four pins (IN1..IN4)")
        if self.min_angle == self.max_angle:
            raise ConfigError("motor.min_angle and motor.max_angle must differ")
        if not 0 < self.min_pulse_width < self.max_pulse_width:
            raise ConfigError("motor.min_pulse_width must be > 0 and below max_pulse_width")


@dataclass(frozen=True)
class AutofocusConfig:
    """Contrast-detect autofocus (see ``device.lens.autofocus``). Steps are motor steps."""
    enabled: bool = False               # autofocus at start / continuously (``--autofocus``)
    mode: AutofocusMode = "once"
    coarse_step: int = 0                # 0: a tenth of the motor range
    fine_step: int = 0                  # 0: a quarter of the coarse step
    stop_ratio: float = 0.75            # coarse scan stops below this share of the best
    min_rise: float = 0.15              # peak must beat both flanks by this share: else failed
    settle_frames: int = 1              # frames dropped after the lens stops (statistics lag)
    average_frames: int = 1             # frames averaged at each position
    retrigger_ratio: float = 0.8        # continuous: a change beyond this ratio is a new scene
    retrigger_delay: int = 10           # continuous: frames the new scene must hold still
    timeout_frames: int = 400           # give up (failed) after this many frames
    button_pin: Optional[int | str] = None  # GPIO push button that triggers a one-shot AF
    blur_steps_per_px: float = 0.0      # >0: use the CNN's blur_px to size the first step
    fit: str = "v"                      # peak fit on log focus: v (symmetric V) | parabola
    measure: str = "focus"              # focus (contrast) | hfr | fwhm (stars: a V-curve)
    sweep: bool = True                  # coarse scan as one move, measured every frame

    def __post_init__(self):
        if self.mode not in ("once", "continuous"):
            raise ConfigError("autofocus.mode must be 'once' or 'continuous'")
        if self.coarse_step < 0 or self.fine_step < 0:
            raise ConfigError("autofocus.coarse_step and fine_step must be >= 0")
        if not 0 < self.stop_ratio < 1 or not 0 < self.retrigger_ratio < 1:
            raise ConfigError("autofocus.stop_ratio and retrigger_ratio must lie in (0, 1)")
        if self.min_rise < 0:
            raise ConfigError("autofocus.min_rise must be >= 0")
        if self.settle_frames < 0 or self.average_frames < 1:
            raise ConfigError("autofocus.settle_frames must be >= 0 and average_frames >= 1")
        if self.retrigger_delay < 1 or self.timeout_frames < 10:
            raise ConfigError("autofocus.retrigger_delay must be >= 1 and timeout_frames >= 10")
        if self.blur_steps_per_px < 0:
            raise ConfigError("autofocus.blur_steps_per_px must be >= 0")
        if self.fit not in ("v", "parabola"):
            raise ConfigError("autofocus.fit must be 'v' or 'parabola'")
        if self.measure not in AF_MEASURES:
            raise ConfigError(f"autofocus.measure must be one of {', '.join(AF_MEASURES)}")


@dataclass(frozen=True)
class ServiceConfig:
    """Running as a systemd service (see ``device.service.notify`` and ``systemd/``).

    ``state_dir`` holds the defect map, the motor position and captures by default; ``None``
    means ``$STATE_DIRECTORY`` (set by the unit's ``StateDirectory=``, i.e.
    ``/var/lib/focus-assist``), else ``~/.local/state/focus-assist`` (``device.common.paths``). Camera faults are retried after ``retry_backoff_s``, doubling
    up to ``retry_backoff_max_s``; after ``max_source_failures`` faults in a row the process
    exits non-zero so that systemd restarts it. Keep the longest backoff well below the
    unit's ``WatchdogSec=``: only delivered frames feed the watchdog.
    """
    state_dir: Optional[str] = None
    max_source_failures: int = 5
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 4.0
    status_interval_s: float = 1.0      # STATUS= update period (systemctl status)

    def __post_init__(self):
        if self.state_dir == "":
            raise ConfigError("service.state_dir must not be empty (omit it for the default)")
        if self.max_source_failures < 1:
            raise ConfigError("service.max_source_failures must be >= 1")
        if self.retry_backoff_s <= 0 or self.retry_backoff_max_s < self.retry_backoff_s:
            raise ConfigError("service.retry_backoff_s must be > 0 and <= retry_backoff_max_s")
        if self.status_interval_s <= 0:
            raise ConfigError("service.status_interval_s must be > 0")

    def resolved_state_dir(self, environ=None) -> Path:
        return paths.state_dir(self.state_dir, environ)

    def backoff(self, failures: int) -> float:
        """Seconds to wait before retry number ``failures`` (1-based)."""
        return min(self.retry_backoff_max_s, self.retry_backoff_s * 2 ** max(0, failures - 1))


@dataclass(frozen=True)
class CaptureConfig:
    """Capture-when-sharp (trap focus, see ``device.capture.sink`` and ``device.capture.trap``).

    A capture fires at a local peak of the noise-robust focus value: above ``fire_ratio``
    of the recent maximum after a dip below ``rearm_ratio`` (Magic Lantern's 80%/60%),
    confirmed once the value falls below ``fall_ratio`` of the peak's best. The focus net
    can veto a peak only when it is confident the best frame is blurred (p(sharp) <=
    ``veto_sharp_prob`` at certainty >= ``veto_certainty``) and the value rose less than
    ``strong_rise`` times from the dip; see ``device.capture.decide``.
    """
    enabled: bool = False
    dir: Optional[str] = None            # None: <state dir>/captures
    format: str = "jpeg"                 # jpeg | png (frames); the Pi can also save dng
    jpeg_quality: int = 92
    pi_mode: str = "frame"               # frame: the peak's main-stream frame; still: a
                                         # full-resolution still; dng: raw sensor data
    min_sharp_prob: float = 0.5          # the net "agrees" at or above this
    veto_sharp_prob: float = 0.2
    veto_certainty: float = 0.5
    strong_rise: float = 4.0
    fire_ratio: float = 0.8
    rearm_ratio: float = 0.6
    fall_ratio: float = 0.95
    confirm_frames: int = 8              # ... for this many frames in a row (a glitch is not a fall)
    history_frames: int = 90             # the "recent history" the maximum is taken over
    cooldown_s: float = 2.0
    burst: int = 1                       # the N best frames of a peak (Pi still: N stills)
    max_files: int = 500                 # images per run, then capturing stops
    min_free_mb: float = 200.0           # below this free space capturing pauses
    prefix: str = "focus"

    def __post_init__(self):
        if self.dir == "":
            raise ConfigError("capture.dir must not be empty (omit it for the default)")
        if self.format not in ("jpeg", "png"):
            raise ConfigError("capture.format must be 'jpeg' or 'png'")
        if self.pi_mode not in ("frame", "still", "dng"):
            raise ConfigError("capture.pi_mode must be one of frame, still, dng")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError("capture.jpeg_quality must lie in 1..100")
        if not 0.0 <= self.min_sharp_prob <= 1.0:
            raise ConfigError("capture.min_sharp_prob must lie in 0..1")
        if not 0.0 <= self.veto_sharp_prob <= self.min_sharp_prob:
            raise ConfigError("capture.veto_sharp_prob must lie in 0..min_sharp_prob")
        if not 0.0 <= self.veto_certainty <= 1.0:
            raise ConfigError("capture.veto_certainty must lie in 0..1")
        if self.strong_rise < 1.0:
            raise ConfigError("capture.strong_rise must be >= 1")
        if not 0 < self.rearm_ratio < self.fire_ratio < 1:
            raise ConfigError("capture ratios must satisfy 0 < rearm_ratio < fire_ratio < 1")
        if not 0 < self.fall_ratio < 1:
            raise ConfigError("capture.fall_ratio must lie in (0, 1)")
        if self.history_frames < 3:
            raise ConfigError("capture.history_frames must be >= 3")
        if self.confirm_frames < 1:
            raise ConfigError("capture.confirm_frames must be >= 1")
        if self.cooldown_s < 0 or self.min_free_mb < 0:
            raise ConfigError("capture.cooldown_s and capture.min_free_mb must be >= 0")
        if not 1 <= self.burst <= 20:
            raise ConfigError("capture.burst must lie in 1..20")
        if self.max_files < 1:
            raise ConfigError("capture.max_files must be >= 1")
        if not self.prefix or "/" in self.prefix or self.prefix.startswith("."):
            raise ConfigError("capture.prefix must be a plain, non-hidden file name prefix")


@dataclass(frozen=True)
class DefectsConfig:
    """Pixel defects (see ``device.defects.persistence``): the live persistent map and the checks.

    In one frame a pixel is a candidate when it lies beyond every pixel of the ring at
    distance 2 around it (the extremes of its neighbourhood) by ``threshold`` plus
    ``spread_gain`` times the ring's own range, and is the strongest in its 3x3. It is
    confirmed once it was a candidate in ``min_hits`` frames whose neighbourhood had
    changed (block means by ``scene_change`` grey levels or more, beyond noise, or their
    texture), and in most frames since it was first seen (texture moves with the scene, a
    defect does not). One rule for the live map, ``defects --sequence`` and the video report.
    """
    live: bool = False
    # Accepted so that older files still load; the one persistence rule uses min_hits.
    min_scene_changes: int = 3
    # The classic live map and the checks (device.defects.persistence).
    detector: str = "classic"            # per-frame candidates of the live map and video
                                         # report: classic (ring rule) | net (defect net)
    threshold: float = 16.0              # 0..255 units beyond the ring's extremes
    spread_gain: float = 0.3
    min_hits: int = 5
    scene_change: float = 1.0            # grey levels (5x5 block means) between counted hits
    every_n_frames: int = 5              # live map: analyse one frame in N (CPU budget)
    save_interval_s: float = 30.0
    map_file: Optional[str] = None       # None: <state dir>/defects.json

    def __post_init__(self):
        if self.threshold <= 0 or self.spread_gain < 0 or self.scene_change < 0:
            raise ConfigError("defects.threshold must be > 0, spread_gain and scene_change >= 0")
        if self.detector not in ("classic", "net"):
            raise ConfigError("defects.detector must be 'classic' or 'net'")
        if self.min_hits < 1 or self.min_scene_changes < 1:
            raise ConfigError("defects.min_hits and defects.min_scene_changes must be >= 1")
        if self.every_n_frames < 1 or self.save_interval_s <= 0:
            raise ConfigError("defects.every_n_frames must be >= 1 and save_interval_s > 0")
        if self.map_file == "":
            raise ConfigError("defects.map_file must not be empty (omit it for the default)")


@dataclass(frozen=True)
class OverlayConfig:
    """The viewfinder overlay (see ``device.overlay``); every element can also be switched
    at runtime from the web page. ``preview`` picks how a Pi with a display shows it:
    ``overlay`` (``set_overlay``: QT/QTGL/DRM preview only, never in encoded streams),
    ``post_callback`` (drawn into the main stream for preview and encoders), or ``none``."""
    peaking: bool = True
    peaking_share: float = 0.005        # fraction of pixels lit in a sharp frame (Magic Lantern)
    peaking_floor: float = 0.7          # share of the running peak edge strength to light at all
    peaking_noise_k: float = 8.0        # noise multiples below which nothing lights
    peaking_memory_s: float = 8.0       # half-life of the running peak edge strength
    peaking_colour: str = "red"         # name or #rrggbb
    heatmap: bool = False
    heatmap_alpha: float = 0.35
    heatmap_source: str = "auto"        # auto (CNN if present) | focus | cnn
    hud: bool = True
    defects: bool = True
    roi: bool = True
    zoom: bool = False
    stars: bool = False                 # star mode: circle the detected stars
    zoom_factor: float = 3.0
    zoom_size: float = 0.35             # inset width as a share of the frame width
    preview: str = "overlay"            # overlay | post_callback | none
    preview_backend: str = "auto"       # auto | qtgl | qt | drm (for preview = overlay)
    preview_size: tuple[int, int] = (1024, 768)  # preview window; the RGBA overlay's size

    def __post_init__(self):
        if not 0 < self.peaking_share <= 0.2:
            raise ConfigError("overlay.peaking_share must lie in (0, 0.2]")
        if not 0 <= self.peaking_floor < 1:
            raise ConfigError("overlay.peaking_floor must lie in [0, 1)")
        if self.peaking_noise_k < 0 or self.peaking_memory_s <= 0:
            raise ConfigError("overlay.peaking_noise_k must be >= 0 and peaking_memory_s > 0")
        from device.common.colour import parse_colour
        try:
            parse_colour(self.peaking_colour)
        except ValueError as exc:
            raise ConfigError(f"overlay.peaking_colour: {exc}") from None
        if not 0 < self.heatmap_alpha <= 1:
            raise ConfigError("overlay.heatmap_alpha must lie in (0, 1]")
        if self.heatmap_source not in ("auto", "focus", "cnn"):
            raise ConfigError("overlay.heatmap_source must be one of auto, focus, cnn")
        if not 1 <= self.zoom_factor <= 16 or not 0.1 <= self.zoom_size <= 0.8:
            raise ConfigError("overlay.zoom_factor must lie in 1..16 and zoom_size in 0.1..0.8")
        if self.preview not in ("overlay", "post_callback", "none"):
            raise ConfigError("overlay.preview must be one of overlay, post_callback, none")
        if self.preview_backend not in ("auto", "qtgl", "qt", "drm"):
            raise ConfigError("overlay.preview_backend must be one of auto, qtgl, qt, drm")
        if not all(64 <= v <= 8192 for v in self.preview_size):
            raise ConfigError("overlay.preview_size must be two integers in 64..8192")


@dataclass(frozen=True)
class WebConfig:
    """The web viewfinder (see ``device.viewfinder.web``). ``listen`` = "HOST:PORT" turns it on.
    Any host other than loopback needs a ``token`` (or $FOCUS_ASSIST_WEB_TOKEN)."""
    listen: Optional[str] = None
    token: Optional[str] = None
    jpeg_quality: int = 75
    max_width: int = 1280               # wider display frames are scaled down for the stream
    history_s: float = 10.0             # focus sparkline span
    allowed_hosts: tuple[str, ...] = ()  # extra Host names to answer (DNS rebinding guard); "*": any

    def __post_init__(self):
        if self.listen is not None:
            parse_listen(self.listen)   # raises ConfigError naming the problem
        check_token(self.token, "web.token")
        if not 10 <= self.jpeg_quality <= 100:
            raise ConfigError("web.jpeg_quality must lie in 10..100")
        if self.max_width < 160:
            raise ConfigError("web.max_width must be >= 160")
        if not 1 <= self.history_s <= 600:
            raise ConfigError("web.history_s must lie in 1..600")
        for name in self.allowed_hosts:
            if not name or any(c.isspace() or c in "/@\\" for c in name):
                raise ConfigError(f"web.allowed_hosts: {name!r} is not a host name")


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    picamera2: PicameraConfig = field(default_factory=PicameraConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    log: LogConfig = field(default_factory=LogConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    motor: MotorConfig = field(default_factory=MotorConfig)
    autofocus: AutofocusConfig = field(default_factory=AutofocusConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    defects: DefectsConfig = field(default_factory=DefectsConfig)
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    web: WebConfig = field(default_factory=WebConfig)
    bracket: BracketConfig = field(default_factory=BracketConfig)
    input: InputConfig = field(default_factory=InputConfig)
    stars: StarsConfig = field(default_factory=StarsConfig)
    verdict: VerdictConfig = field(default_factory=VerdictConfig)
    inspect: InspectConfig = field(default_factory=InspectConfig)


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Read ``path`` (TOML) if given, apply ``overrides`` (nested dict), validate."""
    data: dict = {}
    if path is not None:
        data = read_toml(Path(path))
    if overrides:
        data = merge(data, overrides)
    return build(Config, data)


def with_section(cfg: Config, name: str, **changes) -> Config:
    """A copy of ``cfg`` with fields of one section changed (validated again)."""
    section = replace(getattr(cfg, name), **changes)
    return replace(cfg, **{name: section})
