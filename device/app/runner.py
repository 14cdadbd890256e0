"""``focus-assist run``: open the source, build the app (``device.app.wiring``), run the loop.

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

from device.app.wiring import build_app, validate_reload
from device.common.jsonio import to_jsonable
from device.config import load_config
from device.errors import ConfigError
from device.loop.frame_loop import Loop
from device.service.logs import setup_logging
from device.sources import open_source
from device.sources.sim import SimCamera

log = logging.getLogger(__name__)

# How long SIGTERM waits for a source stuck in read(). With the 0.2 s poll before it and the
# interpreter's exit after it, this must leave margin inside the 2 s stop promised to
# systemd: at 1.5 s a hung camera took 1.75-2.05 s to exit on a loaded 2-core box.
STOP_TIMEOUT_S = 1.0


@dataclass
class RunOptions:
    """What the command line adds on top of the config file (flags are config overrides)."""
    config_path: Optional[str] = None
    overrides: Optional[dict] = None
    frames: Optional[int] = None
    stats: bool = False
    headless: bool = False


class Runner:
    def __init__(self, opts: RunOptions, *, pin_factory=None):
        self.opts = opts
        self.cfg = load_config(opts.config_path, opts.overrides)
        setup_logging(self.cfg.log.level)
        self.source = open_source(self.cfg.source.spec, self.cfg)
        try:
            self.app = build_app(self.cfg, self.source, headless=opts.headless, pin_factory=pin_factory)
        except BaseException:
            self.source.close()
            raise
        self.loop = Loop(self.source, self.app.scorer, self.app.sinks, max_frames=opts.frames,
                         faults=self.cfg.service, on_reload=self.reload)
        self.error: Optional[BaseException] = None

    def reload(self) -> None:
        """SIGHUP: re-read the config file; apply what can change live, keep the rest."""
        notifier = self.app.notifier
        notifier.reloading()    # systemctl shows "reloading" until READY=1 below
        try:
            try:
                new = load_config(self.opts.config_path, self.opts.overrides)
                frame = self.loop.last_frame
                validate_reload(new, self.cfg, frame.grey.shape if frame is not None else None)
            except ConfigError as exc:
                log.error("config reload failed, keeping the old config: %s", exc)
                return
            self.cfg = new
            setup_logging(new.log.level)
            self.app.scorer.set_roi(new.scoring.roi)
            for sink in self.app.sinks:
                sink.reconfigure(new)
            log.info("config reloaded from %s", self.opts.config_path or "defaults")
        finally:
            notifier.ready()

    def _work(self) -> None:
        try:
            self.loop.run()
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def run(self) -> int:
        notifier = self.app.notifier
        handlers = self._install_signals()
        worker = threading.Thread(target=self._work, name="frame-loop", daemon=True)
        try:
            log.info("running on %s", self.source.name)
            notifier.ready(f"running on {self.source.name}")
            worker.start()
            while worker.is_alive() and not self.loop.stop_event.is_set():
                worker.join(0.2)
                if self.app.finished.is_set():     # e.g. a focus bracket that is done
                    self.loop.stop()
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
        bracket = self.app.bracket
        return 1 if bracket is not None and bracket.state == "failed" else 0   # nothing taken

    def summary(self) -> dict:
        out = self.loop.stats.summary()
        out["source"] = self.source.info()
        if isinstance(self.source, SimCamera):
            out["sim"] = self.source.truth()
        out.update(self.loop.sink_stats())
        last = self.loop.last_result
        if last is not None:
            out["last"] = {"focus": last.focus}
            if last.label is not None:
                out["last"].update(label=last.label, sharp_prob=last.sharp_prob)
            if last.verdict is not None:
                out["last"]["verdict_by"] = last.verdict.decided_by
        return to_jsonable(out)

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
