"""Focus bracketing: N captures centred on focus, for a focus-stacking tool.

``BracketSink`` is a loop sink beside the autofocus sink (which owns and clocks the
motor). With ``bracket.start = "focus"`` it waits for the one-shot autofocus to end and,
meanwhile, records the focus curve the scan measured (the value at each position where
the lens stood still); with ``"here"`` it centres on where the lens is. The step between
captures is ``bracket.step``, else a quarter of the curve's full width at half maximum
(about one depth of field: on the simulated lens the half-maximum width is 3.0-4.6 depths
of field, by scene), else the autofocus fine step when there is no curve to read.

The positions are shifted as a whole to fit inside the motor's soft limits and visited in
the motor's approach direction; every move ends with the motor's backlash-safe final
approach, so each capture sees the gear play taken up on the same side. After each move
``settle_frames`` frames are dropped, then the frame is captured: encoded and written by
``device.capture.sink.CaptureWriter`` (image, then sidecar, each atomically) on a worker
thread. Then the lens goes back to focus, the manifest ``bracket-<UTC time>.json`` is
written atomically, and ``on_done`` is called (the runner stops unless other features keep
it running).
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from device.capture.sink import EXTENSIONS, CaptureWriter, encode_image
from device.common.atomic import atomic_write_json
from device.common.jsonio import to_jsonable
from device.config import CaptureConfig
from device.config.bracket import BracketConfig
from device.errors import InputError
from device.lens.search import FAILED, FOCUSED
from device.loop.result import FrameResult
from device.loop.sink import Sink

log = logging.getLogger(__name__)

WAITING, SHOOTING, RETURNING, WRITING, DONE = "waiting", "shooting", "returning", "writing", "done"
FWHM_PER_STEP = 4.0


@dataclass(frozen=True)
class BracketStatus:
    """``run --stats`` shows it under ``bracket``."""
    state: str                      # waiting | shooting | returning | writing | done | failed
    reason: str
    frames: int                     # captures taken so far
    of: int
    step: Optional[int]
    best_position: Optional[int]
    manifest: Optional[str]


def step_from_curve(samples: dict[int, float]) -> Optional[int]:
    """A quarter of the focus curve's full width at half maximum, in motor steps; None
    unless the samples fall below half of their best on both sides of it."""
    if len(samples) < 3:
        return None
    pos = sorted(samples)
    vals = [samples[p] for p in pos]
    b = max(range(len(pos)), key=vals.__getitem__)
    half = vals[b] / 2

    def crossing(indices) -> Optional[float]:
        prev = b
        for i in indices:
            if vals[i] < half:   # interpolate between the last point above and this one
                t = (vals[prev] - half) / (vals[prev] - vals[i])
                return pos[prev] + t * (pos[i] - pos[prev])
            prev = i
        return None

    lo, hi = crossing(range(b - 1, -1, -1)), crossing(range(b + 1, len(pos)))
    if lo is None or hi is None:
        return None
    return max(1, round((hi - lo) / FWHM_PER_STEP))


def plan_positions(centre: int, n: int, step: int, limits: tuple[int, int],
                   approach: int = 1) -> list[int]:
    """``n`` positions ``step`` apart centred on ``centre``, shifted into ``limits``, in the
    order of the approach direction; InputError when the span does not fit."""
    lo, hi = limits
    span = (n - 1) * step
    if span > hi - lo:
        raise InputError(f"a bracket of {n} frames {step} steps apart spans {span} steps; "
                         f"the motor's travel is {hi - lo}")
    first = round(centre - span / 2)
    first = min(max(first, lo), hi - span)
    out = [first + i * step for i in range(n)]
    return out if approach > 0 else out[::-1]


class BracketSink(Sink):
    def __init__(self, cfg: BracketConfig, motor, directory: Path, *, autofocus=None,
                 capture: CaptureConfig = CaptureConfig(), fine_step: int = 1,
                 source_name: Optional[str] = None, on_done: Optional[Callable[[], None]] = None,
                 clock: Callable[[], float] = time.time):
        if cfg.start == "focus" and autofocus is None:
            raise InputError("--bracket-from focus needs autofocus")
        self.cfg = cfg
        self.motor = motor
        self.autofocus = autofocus
        self.capture_cfg = capture
        self.writer = CaptureWriter(Path(directory), capture.prefix)
        self.dir = Path(directory)
        self.fine_step = max(1, fine_step)
        self.source_name = source_name
        self.on_done = on_done
        self.clock = clock
        self.state, self.reason = WAITING, ("autofocus first" if cfg.start == "focus"
                                            else "starting from the current position")
        self.curve: dict[int, float] = {}
        self.step: Optional[int] = None
        self.best: Optional[int] = None
        self.plan: list[int] = []
        self.shots: list[tuple[int, float, Future]] = []   # (lens position, focus, image path)
        self._why = ""
        self.manifest: Optional[Path] = None
        self._idle = self._still = 0
        self._last_steps = motor.steps
        self._started = clock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bracket-writer")
        # A motor on its own thread is known idle only to the frame: one more frame dropped.
        self._settle = cfg.settle_frames + (0 if motor.frame_clocked else 1)

    # --- the sink interface ----------------------------------------------------------
    def on_frame(self, frame, result: FrameResult) -> None:
        if self._closed or self.state in (DONE, FAILED):
            return
        steps = self.motor.steps
        moved = steps != self._last_steps
        self._last_steps = steps
        # ``_still``: frames the lens has not moved (a move commanded on this frame by the
        # autofocus has not started, so its frame still counts for the curve);
        # ``_idle``: frames with the motor not busy either.
        self._still = 0 if moved else self._still + 1
        self._idle = 0 if (moved or self.motor.busy) else self._idle + 1
        if self.state == WAITING:
            self._wait(result)
        elif self.state == SHOOTING:
            self._shoot(frame, result)
        elif self.state == RETURNING:
            if self._idle > 0:
                self.state, self.reason = WRITING, "finishing the files"
        if self.state == WRITING and all(f.done() for _, _, f in self.shots):
            self._finish()

    def status(self) -> BracketStatus:
        return BracketStatus(state=self.state, reason=self.reason, frames=len(self.shots),
                             of=self.cfg.frames, step=self.step, best_position=self.best,
                             manifest=None if self.manifest is None else str(self.manifest))

    def stats(self) -> dict:
        return {"bracket": to_jsonable(self.status())}

    def _close(self) -> None:
        self._pool.shutdown(wait=True)   # files are left whole

    # --- the steps ---------------------------------------------------------------------
    def _wait(self, result: FrameResult) -> None:
        if self.cfg.start == "here":
            self._begin(self.motor.position, None)
            return
        af = self.autofocus
        if af.state not in (FOCUSED, FAILED) or af.runs == 0:
            # Where the autofocus takes its samples: after its own settle frames.
            af_settle = af.cfg.settle_frames + (0 if self.motor.frame_clocked else 1)
            if self._still >= max(1, af_settle):
                self.curve[self.motor.position] = float(result.focus)
            return
        if af.state == FAILED:
            self._fail(f"autofocus failed ({af.reason}): no bracket taken")
            return
        if self.motor.busy or self._idle == 0:
            return
        self._begin(self.motor.position, step_from_curve(self.curve))

    def _begin(self, centre: int, curve_step: Optional[int]) -> None:
        self.best = int(centre)
        self.step = self.cfg.step or curve_step or self.fine_step
        why = ("bracket.step" if self.cfg.step else
               "a quarter of the focus curve's half-maximum width" if curve_step else
               "the autofocus fine step (no focus curve to read)")
        try:
            self.plan = plan_positions(self.best, self.cfg.frames, self.step, self.motor.limits,
                                       self.motor.approach)
        except InputError as exc:
            self._fail(str(exc))
            return
        log.info("bracket: %d frames %d steps apart (%s) around %d", self.cfg.frames, self.step,
                 why, self.best)
        self._why = why
        self.state, self.reason = SHOOTING, f"step {self.step} ({why})"
        self._next()

    def _next(self) -> None:
        self.motor.move_to(self.plan[len(self.shots)])
        self._idle = 0

    def _shoot(self, frame, result: FrameResult) -> None:
        if self.motor.busy or self._idle <= self._settle:
            return
        pos = int(self.motor.position)
        idx = len(self.shots)
        sidecar = {"frame_index": int(frame.index), "timestamp": float(frame.timestamp),
                   "trigger": "bracket", "lens_position": pos,
                   "bracket": {"index": idx, "of": self.cfg.frames, "step": self.step,
                               "best_position": self.best},
                   "scores": to_jsonable(result.scores()), "roi": list(result.roi) if result.roi else None,
                   "source": self.source_name}
        fmt, quality = self.capture_cfg.format, self.capture_cfg.jpeg_quality
        if fmt == "dng":     # raw needs the Pi's still pipeline; a bracket saves the frame
            fmt = "png"
        img, when = frame.display.copy(), self.clock()
        sidecar.update(format=fmt, what="frame", width=int(img.shape[1]), height=int(img.shape[0]))

        def write() -> Path:
            return self.writer.write(ext=EXTENSIONS[fmt], frame_index=int(frame.index),
                                     sidecar=sidecar, data=encode_image(img, fmt, quality),
                                     when=when, tag=f"-b{idx:03d}")

        self.shots.append((pos, float(result.focus), self._pool.submit(write)))
        if len(self.shots) < len(self.plan):
            self._next()
            return
        self.motor.move_to(self.best)
        self._idle = 0
        self.state, self.reason = RETURNING, f"back to focus at {self.best}"

    def _finish(self) -> None:
        frames = []
        for pos, focus, fut in self.shots:
            try:
                path = fut.result()
            except Exception as exc:
                self._fail(f"saving a bracket frame failed: {exc}")
                return
            frames.append({"image": path.name, "lens_position": pos, "focus": round(focus, 4)})
        frames.sort(key=lambda f: f["lens_position"])
        stamp = _dt.datetime.fromtimestamp(self._started, _dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        manifest = {"frames": frames, "best_position": self.best, "step": self.step}
        for n in range(1000):
            path = self.dir / f"bracket-{stamp}{f'-{n}' if n else ''}.json"
            try:
                atomic_write_json(path, manifest, sort_keys=False, overwrite=False)
                break
            except FileExistsError:
                continue
        self.manifest = path
        self.state, self.reason = DONE, (f"{len(frames)} frames {self.step} steps apart "
                                         f"({self._why}); manifest {path.name}")
        log.info("bracket: done: %s", self.reason)
        self._done()

    def _fail(self, reason: str) -> None:
        self.state, self.reason = FAILED, reason
        log.error("bracket: %s", reason)
        self._done()

    def _done(self) -> None:
        if self.on_done is not None:
            self.on_done()

