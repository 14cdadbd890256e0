"""The composition root: every part of ``focus-assist run``, built once from the validated,
frozen config and handed to the parts that use it.

Nothing else constructs a feature or looks one up: the viewfinder is given the autofocus
and capture features it shows, the web server the ones it controls, the capture feature a
function that reads the lens position. A part that fails to build closes the ones built
before it (a motor is de-energised) before the error reaches the command line.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional

from device.capture.sink import CaptureSink, capture_dir
from device.config import Config
from device.defects.live import DefectMapSink
from device.defects.persistence import DefectMap, load_detector
from device.errors import ConfigError, InputError
from device.lens.autofocus import Autofocus
from device.lens.motor import Motor, open_motor
from device.loop.frame_loop import JsonlSink
from device.loop.sink import Sink, close_all
from device.optics.bracket import BracketSink
from device.scoring.classic import ClassicScorer, Scorer
from device.scoring.focus_net import scorer_from_config
from device.service.notify import Notifier, ServiceNotifierSink
from device.sources.base import FrameSource
from device.sources.picam import Picamera2Source
from device.viewfinder.state import Viewfinder

if TYPE_CHECKING:
    from device.sources.sim import SimCamera

log = logging.getLogger(__name__)


def sim_camera(source: FrameSource) -> "Optional[SimCamera]":
    """``source`` if it is the simulated camera, else None. The simulator's module (0.8 MB
    of RSS with its scenes and optics) is looked up, not imported: a SimCamera exists only
    once its module is loaded, so a run on a camera or a video never loads it."""
    sim = sys.modules.get("device.sources.sim")
    return source if sim is not None and isinstance(source, sim.SimCamera) else None


@dataclass
class App:
    """One run's parts. ``sinks`` is the order the loop feeds them a frame: the defect map
    first (it attaches ``result.defects`` for the others), the service notifier last."""
    cfg: Config
    source: FrameSource
    scorer: Scorer
    notifier: Notifier
    sinks: list = field(default_factory=list)
    motor: Optional[Motor] = None
    autofocus: Optional[Autofocus] = None
    capture: Optional[CaptureSink] = None
    defect_map: Optional[DefectMapSink] = None
    viewfinder: Optional[Viewfinder] = None
    web: Optional[Sink] = None
    bracket: Optional[BracketSink] = None
    finished: threading.Event = field(default_factory=threading.Event)   # the run's work is done

    def close(self) -> None:
        """Close the sinks (the autofocus sink stops and de-energises the motor) and the
        scorer (the focus net's thread)."""
        close_all(self.sinks)
        self.scorer.close()


def build_scorer(cfg: Config, live: bool = False) -> Scorer:
    """The classic scorer, wrapped by the CNN scorer when the focus net is enabled
    (``live``: a camera, whose frames need not wait for the net)."""
    return scorer_from_config(cfg, ClassicScorer(cfg.scoring), live=live)


def build_app(cfg: Config, source: FrameSource, *, headless: bool = False, pin_factory=None,
              environ: Optional[Mapping[str, str]] = None) -> App:
    env = os.environ if environ is None else environ
    app = App(cfg=cfg, source=source, scorer=build_scorer(cfg, _camera(source)), notifier=Notifier.from_env(env))
    built: list = []          # in build order, for cleanup if a later part fails
    try:
        app.defect_map = _defect_map(cfg)
        if app.defect_map is not None:
            built.append(app.defect_map)
        jsonl = _frame_log(cfg)
        if jsonl is not None:
            built.append(jsonl)
        if cfg.motor.enabled:
            app.motor, app.autofocus = _autofocus(cfg, source, pin_factory)
            built.append(app.autofocus)
        app.capture = CaptureSink(cfg.capture, capture_dir(cfg), source_name=source.name,
                                  lens_position=_lens_reader(source, app.motor),
                                  still=source.capture_still if isinstance(source, Picamera2Source) else None,
                                  roi=cfg.scoring.roi)
        built.append(app.capture)
        app.bracket = _bracket(cfg, app, source)
        if app.bracket is not None:
            built.append(app.bracket)
        if cfg.capture.enabled:
            log.info("capture-when-sharp: saving to %s", app.capture.dir)
        viewers = _viewers(cfg, app, headless, env)
        built.extend(viewers)
        status = None
        if app.notifier.enabled:
            status = ServiceNotifierSink(app.notifier, status_interval_s=cfg.service.status_interval_s)
            built.append(status)
    except BaseException:
        close_all(built)
        raise
    order = [app.defect_map, jsonl, app.capture, app.autofocus, app.bracket, *viewers, status]
    app.sinks = [s for s in order if s is not None]
    return app


def validate_reload(new: Config, old: Config, frame_shape: Optional[tuple]) -> None:
    """A SIGHUP config must still fit the running camera (``frame_shape``, the newest
    frame's): ConfigError if it does not; settings that need a restart are named."""
    roi = new.scoring.roi
    shape = frame_shape
    if roi is not None and shape is not None:
        x, y, w, h = roi
        if x + w > shape[1] or y + h > shape[0]:
            raise ConfigError(f"scoring.roi {x},{y},{w},{h} lies outside the running "
                              f"{shape[1]}x{shape[0]} frames")
    for section, keys in (("source", ("spec",)), ("motor", ("enabled", "driver")),
                          ("web", ("listen",))):
        for key in keys:
            if getattr(getattr(new, section), key) != getattr(getattr(old, section), key):
                log.warning("%s.%s changes need a restart; keeping %r", section, key,
                            getattr(getattr(old, section), key))


# --- the parts -----------------------------------------------------------------------------

def _defect_map(cfg: Config) -> Optional[DefectMapSink]:
    d = cfg.defects
    if not d.live:
        return None
    map_file = Path(d.map_file).expanduser() if d.map_file else cfg.service.resolved_state_dir() / "defects.json"
    sink = DefectMapSink(DefectMap.from_config(d), every_n=d.every_n_frames, map_file=map_file,
                         save_interval_s=d.save_interval_s, detector=load_detector(cfg, live=True))
    log.info("defect map: live (%s), one frame in %d, saved to %s", d.detector, d.every_n_frames, map_file)
    return sink


def _frame_log(cfg: Config) -> Optional[JsonlSink]:
    if not cfg.log.jsonl:
        return None
    try:
        return JsonlSink(cfg.log.jsonl, background=True)
    except OSError as exc:
        raise ConfigError(f"cannot write the frame log {cfg.log.jsonl}: {exc.strerror}") from None


def _autofocus(cfg: Config, source: FrameSource, pin_factory) -> tuple[Motor, Autofocus]:
    """The motor and the AF sink that owns it: closing the sink stops the motor, saves its
    position and de-energises it. ``autofocus.enabled`` starts a one-shot AF on the first
    frame (or runs continuous AF); otherwise AF waits for the web page or the button."""
    sim = sim_camera(source)
    if cfg.motor.driver == "sim" and sim is None:
        raise InputError("the sim motor moves the simulated lens: use it with --source sim, "
                         "or choose --motor stepdir|uln2003|servo")
    motor = open_motor(cfg.motor, sim_camera=sim, pin_factory=pin_factory,
                       state_dir=cfg.service.resolved_state_dir())
    fps = cfg.sim.fps if sim is not None else 0.0
    af_cfg, measure, search = cfg.autofocus, None, None
    if cfg.autofocus.measure != "focus":    # star autofocus (issue 16): a V-curve on star size
        from dataclasses import replace

        from device.lens.vcurve import star_autofocus

        measure, search = star_autofocus(cfg.autofocus.measure, cfg.stars, roi=cfg.scoring.roi,
                                         default_step=round(sim.depth_of_field) if sim else 20)
        af_cfg = replace(cfg.autofocus, average_frames=cfg.stars.af_frames)
    try:
        # A bracket from focus starts with a one-shot autofocus.
        start = cfg.autofocus.enabled or (cfg.bracket.frames > 0 and cfg.bracket.start == "focus")
        af = Autofocus(motor, af_cfg, start=start, owns_motor=True,
                       pin_factory=pin_factory, frame_period=1.0 / fps if fps > 0 else 1.0 / 30,
                       search=search, measure=measure)
    except BaseException:
        motor.close()
        raise
    return motor, af


def _bracket(cfg: Config, app: App, source: FrameSource) -> Optional[BracketSink]:
    """The focus bracket; the run ends after it unless a feature that runs on is on."""
    b = cfg.bracket
    if b.frames == 0:
        return None
    if app.motor is None:
        raise InputError("--bracket needs a focus motor: add --motor stepdir|uln2003|servo "
                         "(or sim with --source sim)")
    from device.capture.sink import ensure_writable_dir

    folder = ensure_writable_dir(capture_dir(cfg))
    runs_on = (cfg.web.listen is not None or cfg.capture.enabled
               or cfg.autofocus.mode == "continuous")
    fine = app.autofocus.search_steps()[1] if app.autofocus is not None else 1
    return BracketSink(b, app.motor, folder, autofocus=app.autofocus, capture=cfg.capture,
                       fine_step=fine, source_name=source.name,
                       on_done=None if runs_on else app.finished.set)


def _camera(source: FrameSource) -> bool:
    """A real camera, whose frames need not wait for the focus net; the simulator stays
    frame-synchronous so that its runs reproduce frame by frame."""
    return source.live and sim_camera(source) is None


def _lens_reader(source: FrameSource, motor: Optional[Motor]) -> Optional[Callable[[], float]]:
    """Where the lens is, for capture sidecars: the motor's steps, or the simulated lens."""
    if motor is not None:
        return lambda: motor.position
    if sim_camera(source) is not None:
        return lambda: source.lens_position
    return None


def _viewers(cfg: Config, app: App, headless: bool, env: Mapping[str, str]) -> list:
    """The shared Viewfinder plus the Pi preview and the web server, as configured.

    Nothing is built when neither is wanted (``make demo`` and the service without
    ``--web`` pay nothing). The preview needs a picamera2 source and no ``--headless``.
    """
    want_web = cfg.web.listen is not None
    want_preview = (cfg.overlay.preview != "none" and not headless
                    and isinstance(app.source, Picamera2Source))
    if not (want_web or want_preview):
        return []
    stars = _star_monitor(cfg, app)
    inspector = _inspector(cfg, app) if want_web else None
    vf = Viewfinder(cfg.overlay, cfg.web.history_s, autofocus=app.autofocus, capture=app.capture,
                    stars=stars, inspector=inspector)
    app.viewfinder = vf
    sinks: list = [s for s in (stars, inspector, vf) if s is not None]
    try:
        if want_preview:
            from device.viewfinder.preview import PicameraPreview

            sinks.append(PicameraPreview(app.source, vf, cfg.overlay.preview,
                                         cfg.overlay.preview_backend, cfg.overlay.preview_size))
        if want_web:
            from device.viewfinder.web.access import TOKEN_ENV
            from device.viewfinder.web.server import WebViewfinder

            token = cfg.web.token or env.get(TOKEN_ENV) or None
            app.web = WebViewfinder(cfg.web.listen, vf, source=app.source, scorer=app.scorer,
                                    autofocus=app.autofocus, capture=app.capture, token=token,
                                    motor=app.motor, motor_busy=_bracket_busy(app.bracket),
                                    defects=app.defect_map,
                                    quality=cfg.web.jpeg_quality, max_width=cfg.web.max_width,
                                    allowed_hosts=cfg.web.allowed_hosts)
            sinks.append(app.web)
    except BaseException:
        close_all(sinks)
        raise
    return sinks


def _bracket_busy(bracket: Optional[BracketSink]) -> Optional[Callable[[], Optional[str]]]:
    """For the web's motor controls: the bracket drives the motor until it is done."""
    if bracket is None:
        return None
    return lambda: "the focus bracket" if bracket.state in ("waiting", "shooting", "returning") else None


def _star_monitor(cfg: Config, app: App):
    """Star mode's per-frame stars for the viewers (``--measure hfr|fwhm``), or None."""
    if cfg.autofocus.measure == "focus":
        return None
    from device.scoring.stars_live import StarMonitor

    return StarMonitor(cfg.autofocus.measure, cfg.stars, cfg.scoring.roi,
                       lens_position=_exposed_lens(app))


def _inspector(cfg: Config, app: App):
    """The live optics inspector the web page asks through /api/inspect ([inspect])."""
    from device.optics.live import LiveInspector

    return LiveInspector(cfg.inspect, autofocus=app.autofocus, lens_position=_exposed_lens(app))


def _exposed_lens(app: App) -> Optional[Callable[[], float]]:
    """Where the lens was for the newest frame: the simulated lens knows where each frame
    was exposed (a frame lags the lens); otherwise the motor's position, if any."""
    if sim_camera(app.source) is not None:
        return lambda: app.source.exposed_position
    return _lens_reader(app.source, app.motor)
