"""``focus-assist run``: open the source, build the app (``device.app.wiring``), run the loop.

The loop runs on a worker thread so the main thread stays free for signals: SIGTERM and
SIGINT stop within 2 s even when a camera hangs inside ``read()`` or the capture queue is
full (``device.service.shutdown``), SIGHUP reloads the config (a bad new config is logged
and the old one kept).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from device.app.wiring import build_app, sim_camera, validate_reload
from device.common.jsonio import to_jsonable
from device.config import load_config
from device.errors import FocusAssistError
from device.loop.frame_loop import Loop
from device.loop.sink import close_all
from device.service.logs import setup_logging
from device.service.shutdown import BoundedStop, Pending
from device.sources import open_source

log = logging.getLogger(__name__)

# What a SIGTERM may spend closing, counted from the signal. With the interpreter's exit
# after it, this leaves margin inside the 2 s stop promised to systemd (the unit SIGKILLs
# at 10 s): at most 1.58 s from SIGTERM to exit with the camera stuck in OpenCV's read()
# or a full PNG capture queue, on a 2-core box at load 9.5 (bench/bench_stop.py).
STOP_BUDGET_S = 1.5
# Of that, how long the frame loop may take to finish the frame it is on.
WORKER_WAIT_S = 0.4
# Kept back from the state and capture steps for the sinks and the source that close after.
SINKS_RESERVE_S = 0.15
SOURCE_RESERVE_S = 0.25


@dataclass
class RunOptions:
    """What the command line adds on top of the config file (flags are config overrides)."""
    config_path: Optional[str] = None
    overrides: Optional[dict] = None
    frames: Optional[int] = None
    stats: bool = False
    headless: bool = False


class Runner:
    def __init__(self, opts: RunOptions, *, pin_factory=None,
                 clock: Callable[[], float] = time.monotonic, stop_budget_s: float = STOP_BUDGET_S):
        self.opts = opts
        self._clock = clock
        self.stop_budget_s = stop_budget_s
        self.signalled = False            # stopped by SIGTERM/SIGINT, not by the end of input
        self.stop_report: Optional[BoundedStop] = None
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
        """SIGHUP: re-read the config file; apply what can change live, keep the rest.

        Runs on the frame loop's thread between frames. A new config is checked against the
        newest frame, so a reload that arrives before the first one waits for it. A config
        that does not fit, or that a feature fails to apply, is logged and the old one is
        put back everywhere: the service never stops over a reload.
        """
        frame = self.loop.last_frame
        if frame is None:
            self.loop.reload_requested.set()    # again after the first frame
            return
        notifier = self.app.notifier
        notifier.reloading()    # systemctl shows "reloading" until READY=1 below
        try:
            old = self.cfg
            try:
                new = load_config(self.opts.config_path, self.opts.overrides)
                validate_reload(new, old, frame.grey.shape)
            except FocusAssistError as exc:
                log.error("config reload failed, keeping the old config: %s", exc)
                return
            done, failed = self._apply(new)
            if failed is None:
                self.cfg = new
                setup_logging(new.log.level)
                log.info("config reloaded from %s", self.opts.config_path or "defaults")
                return
            log.error("config reload failed in %s, keeping the old config", failed)
            _, failed = self._apply(old, upto=done + 1)   # the parts that took the new one
            if failed is not None:
                log.error("restoring the old config failed in %s too", failed)
        finally:
            notifier.ready()

    def _apply(self, cfg, upto: Optional[int] = None) -> tuple[int, Optional[str]]:
        """Hand ``cfg`` to the scorer, then every sink (the first ``upto`` parts): how many
        took it, and the name of the one that raised."""
        parts = [("the scorer", lambda: self.app.scorer.set_roi(cfg.scoring.roi))]
        parts += [(sink.__class__.__name__, lambda s=sink: s.reconfigure(cfg))
                  for sink in self.app.sinks]
        for i, (name, apply) in enumerate(parts[:upto]):
            try:
                apply()
            except Exception:   # one feature's bug must not end the service
                log.exception("reconfiguring %s failed", name)
                return i, name
        return len(parts), None

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
                # Waiting on the event, not the worker, wakes this thread as soon as the
                # signal handler sets it.
                self.loop.stop_event.wait(0.2)
                if self.app.finished.is_set():     # e.g. a focus bracket that is done
                    self.loop.stop()
        finally:
            try:
                if self.signalled:
                    self.stop_bounded(worker)
                else:
                    # The input ended, the worker raised, or the run's work is done (a
                    # bracket): queued captures are finished, as a batch run expects.
                    worker.join(1.0)
                    self.loop.close()
            finally:
                # Only now: a second Ctrl-C during the stop must not raise KeyboardInterrupt
                # into the middle of it.
                self._restore_signals(handlers)
        if self.error is not None:
            if not self.signalled:
                raise self.error
            # A fault while stopping (a sink closed under a frame) is not worth exit 1.
            log.warning("the frame loop ended while stopping: %s", self.error)
        if self.opts.stats:
            print(json.dumps(self.summary()), flush=True)
        bracket = self.app.bracket
        rc = 1 if bracket is not None and bracket.state == "failed" else 0   # nothing taken
        if self.stop_report is not None and self.stop_report.abandoned():
            _exit_now(rc)
        return rc

    def stop_bounded(self, worker: Optional[threading.Thread] = None) -> BoundedStop:
        """Stop within ``stop_budget_s``: state first, then captures, sinks, the source.

        A signal must end the process in time even when a step cannot: each is given what
        is left of the budget and abandoned if it does not return (``BoundedStop``).
        """
        stop = self.stop_report = BoundedStop(self.stop_budget_s, clock=self._clock)
        self.app.notifier.stopping()
        app = self.app
        # What a SIGKILL would lose goes first, alongside the frame loop's last frame: the
        # live defect map, and the motor (stopped, its position saved, its coils
        # de-energised by closing the autofocus that owns it).
        state = stop.start([(name, part.close) for name, part in
                            (("the defect map", app.defect_map), ("the motor", app.autofocus))
                            if part is not None])
        if worker is not None:
            # A source stuck in read() is not waited for beyond this; the rest closes around it.
            stop.wait([Pending("the frame loop", worker, {})], max_s=WORKER_WAIT_S)
        reserve = SINKS_RESERVE_S + SOURCE_RESERVE_S
        stop.wait(state, reserve_s=reserve)
        if app.capture is not None:
            stop.run([("the capture queue", app.capture.close)], reserve_s=reserve)
        stop.run([("the sinks", lambda: close_all(app.sinks))], reserve_s=SOURCE_RESERVE_S)
        stop.run([("the source", self.loop.close)])
        return stop

    def summary(self) -> dict:
        out = self.loop.stats.summary()
        out["source"] = self.source.info()
        if sim_camera(self.source) is not None:
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
            self.signalled = True
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


def _exit_now(rc: int) -> None:
    """Exit without the interpreter's clean-up. A step left running (OpenCV inside read(),
    a PNG being encoded) still owns native threads, and C++ static destructors at exit
    abort under them ("terminate called without an active exception", status -6)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)
