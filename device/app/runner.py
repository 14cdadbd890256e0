"""``focus-assist run``: build source, scorer and sinks once, then run the loop.

The loop runs on a worker thread so the main thread stays free for signals: SIGTERM and
SIGINT stop within 2 s even when a camera hangs inside ``read()``, SIGHUP reloads the
config (a bad new config is logged and the old one kept).
"""
from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Optional

from device.config import Config, load_config
from device.errors import ConfigError
from device.loop.frame_loop import JsonlSink, Loop
from device.scoring.classic import ClassicScorer
from device.sources import open_source

log = logging.getLogger(__name__)

# How long SIGTERM waits for a source stuck in read(). With the 0.2 s poll before it and the
# interpreter's exit after it, this must leave margin inside the 2 s stop promised to
# systemd: at 1.5 s a hung camera took 1.75-2.05 s to exit on a loaded 2-core box.
STOP_TIMEOUT_S = 1.0


@dataclass
class RunOptions:
    """What the command line adds on top of the config file."""
    config_path: Optional[str] = None
    overrides: Optional[dict] = None
    frames: Optional[int] = None
    stats: bool = False
    headless: bool = False
    extra: Optional[dict] = None      # feature flags from the CLI (motor, web, capture...)


def build_scorer(cfg: Config):
    """The classic scorer, wrapped by the CNN scorer when models are enabled and present."""
    from device.scoring.focus_net import scorer_from_config

    return scorer_from_config(cfg, ClassicScorer(cfg.scoring))


def build_sinks(cfg: Config, opts: RunOptions, source, runtime: dict) -> list:
    """Every per-frame consumer, in the order they see a frame.

    If building one fails, the ones already built are closed (a motor is de-energised)
    before the error propagates.
    """
    from device.lens.autofocus import build_autofocus_sink
    from device.capture.sink import build_capture_sink
    from device.defects.persistence import build_defect_sink
    from device.service.notify import Notifier, ServiceNotifierSink
    from device.viewfinder.state import build_viewfinder_sinks

    sinks: list = []
    extra = opts.extra or {}
    try:
        # The defect map comes first, so later sinks see result["defects"].
        defect_sink = build_defect_sink(cfg, runtime)
        if defect_sink is not None:
            sinks.append(defect_sink)
        if cfg.log.jsonl:
            try:
                sinks.append(JsonlSink(cfg.log.jsonl))
            except OSError as exc:
                raise ConfigError(f"cannot write the frame log {cfg.log.jsonl}: {exc.strerror}") from None
        sinks.append(build_capture_sink(cfg, source, runtime))   # runtime["capture"]
        af_sink = build_autofocus_sink(cfg, source, runtime, motor=extra.get("motor"),
                                       autofocus=extra.get("autofocus"))
        if af_sink is not None:
            sinks.append(af_sink)     # runtime["autofocus"]; owns and closes the motor
        sinks.extend(build_viewfinder_sinks(cfg, opts, source, runtime))  # overlay, preview, web
        notifier = Notifier.from_env()
        runtime["notifier"] = notifier
        if notifier.enabled:
            sinks.append(ServiceNotifierSink(notifier, status_interval_s=cfg.service.status_interval_s))
    except BaseException:
        for sink in reversed(sinks):
            close = getattr(sink, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing %s failed", sink.__class__.__name__)
        raise
    return sinks


class Runner:
    def __init__(self, opts: RunOptions):
        self.opts = opts
        self.cfg = load_config(opts.config_path, opts.overrides)
        self._apply_log_level()
        self.runtime: dict = {}
        self.source = open_source(self.cfg.source.spec, self.cfg)
        self.runtime["source"] = self.source
        try:
            self.scorer = build_scorer(self.cfg)
            self.runtime["scorer"] = self.scorer
            self.sinks = build_sinks(self.cfg, opts, self.source, self.runtime)
        except BaseException:
            self.source.close()
            raise
        self.loop = Loop(self.source, self.scorer, self.sinks, max_frames=opts.frames,
                         faults=self.cfg.service, on_reload=self.reload)
        self.error: Optional[BaseException] = None

    def _apply_log_level(self) -> None:
        # --log-level on the command line wins; otherwise [log] level applies (the service
        # has no command-line level, so this is how it gets debug logs, also on SIGHUP).
        if not (self.opts.extra or {}).get("log_level"):
            from device.service.logs import setup_logging

            setup_logging(self.cfg.log.level)

    def reload(self) -> None:
        """SIGHUP: re-read the config file; apply what can change live, keep the rest."""
        notifier = self.runtime.get("notifier")
        if notifier is not None:
            notifier.reloading()    # systemctl shows "reloading" until READY=1 below
        try:
            try:
                new = load_config(self.opts.config_path, self.opts.overrides)
            except ConfigError as exc:
                log.error("config reload failed, keeping the old config: %s", exc)
                return
            self.cfg = new
            self._apply_log_level()
            if hasattr(self.scorer, "set_roi"):
                self.scorer.set_roi(new.scoring.roi)
            for sink in self.sinks:
                fn = getattr(sink, "reconfigure", None)
                if fn is not None:
                    fn(new)
            log.info("config reloaded from %s", self.opts.config_path or "defaults")
        finally:
            if notifier is not None:
                notifier.ready()

    def _work(self) -> None:
        try:
            self.loop.run()
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def run(self) -> int:
        notifier = self.runtime.get("notifier")
        handlers = self._install_signals()
        worker = threading.Thread(target=self._work, name="frame-loop", daemon=True)
        try:
            log.info("running on %s", self.source.name)
            if notifier is not None:
                notifier.ready(f"running on {self.source.name}")
            worker.start()
            while worker.is_alive() and not self.loop.stop_event.is_set():
                worker.join(0.2)
            worker.join(STOP_TIMEOUT_S)
            if worker.is_alive():
                log.warning("the source did not return within %.1f s; stopping without it",
                            STOP_TIMEOUT_S)
        finally:
            self._restore_signals(handlers)
            self.loop.close()
        if self.error is not None:
            raise self.error
        if self.opts.stats:
            print(json.dumps(self.summary()), flush=True)
        return 0

    def summary(self) -> dict:
        out = self.loop.stats.summary()
        out["source"] = self.source.info()
        truth = getattr(self.source, "truth", None)
        if truth is not None:
            out["sim"] = truth()
        out.update(self.loop.sink_stats())
        if self.loop.last_result is not None:
            last = self.loop.last_result
            out["last"] = {k: last[k] for k in ("focus", "label", "sharp_prob") if k in last}
        return out

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return {}
        def stop(signum, _frame):
            log.info("%s: stopping", signal.Signals(signum).name)
            self.loop.stop()
        def hup(_signum, _frame):
            self.loop.reload_requested.set()
        old = {}
        for sig, fn in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, hup)):
            old[sig] = signal.signal(sig, fn)
        return old

    @staticmethod
    def _restore_signals(old) -> None:
        for sig, fn in old.items():
            signal.signal(sig, fn)
