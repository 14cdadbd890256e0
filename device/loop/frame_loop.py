"""The frame loop: ``source -> scorer -> sinks``.

The body (``Loop.step``) is small and testable without a camera. The scorer turns a frame
into a ``FrameResult``; sinks (``device.loop.sink.Sink``) see it in order; slow work
(JPEG encoding, file writes, motor motion) runs on the sinks' own threads so it never
holds up the next frame. Camera faults are retried with backoff; after
``service.max_source_failures`` consecutive faults ``SourceError`` propagates so the process exits
non-zero and systemd restarts it.
"""
from __future__ import annotations

import errno
import logging
import os
import random
import stat
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from device.config import ServiceConfig
from device.errors import FocusAssistError, SourceError
from device.common.jsonio import dumps
from device.common.rate import RateMeter
from device.loop.result import FrameResult
from device.loop.sink import Sink, close_all
from device.service.logs import Throttle
from device.scoring.classic import Scorer
from device.sources.base import Frame, FrameSource

log = logging.getLogger(__name__)


@dataclass
class LoopStats:
    """Counters and timing of the loop, in constant memory however long the service runs.

    Per-frame times go into a fixed-size uniform reservoir (Vitter's algorithm R), so the
    p50/p95 of a 50,000-frame run describe the whole run, not its first or last part.
    """
    frames: int = 0
    started: float = field(default_factory=time.monotonic)
    ended: Optional[float] = None
    faults: int = 0
    consecutive_faults: int = 0
    last_fault: Optional[str] = None
    proc_ms: np.ndarray = field(default_factory=lambda: np.zeros(LoopStats.MAX_SAMPLES))
    samples: int = 0                   # filled slots of proc_ms
    rate: RateMeter = field(default_factory=lambda: RateMeter(30))   # recent frame times
    _rng: random.Random = field(default_factory=lambda: random.Random(0))

    MAX_SAMPLES = 4096

    def add(self, ms: float, t: float) -> None:
        self.frames += 1
        if self.samples < len(self.proc_ms):
            self.proc_ms[self.samples] = ms
            self.samples += 1
        else:
            slot = self._rng.randrange(self.frames)
            if slot < len(self.proc_ms):
                self.proc_ms[slot] = ms
        self.rate.tick(t)

    @property
    def fps(self) -> float:
        return self.rate.fps

    def summary(self) -> dict:
        end = self.ended or time.monotonic()
        wall = max(end - self.started, 1e-9)
        ms = self.proc_ms[:self.samples] if self.samples else np.zeros(1)
        return {
            "frames": self.frames,
            "fps": round(self.frames / wall, 2),
            "ms_per_frame_p50": round(float(np.percentile(ms, 50)), 3),
            "ms_per_frame_p95": round(float(np.percentile(ms, 95)), 3),
            "wall_s": round(wall, 3),
            "faults": self.faults,
        }


class JsonlSink(Sink):
    """One JSON object per frame (the per-frame log): ``FrameResult.to_json``.

    A write that fails (a full SD card, an I/O error) never stops the loop: the log pauses,
    says so once, and tries again every ``retry_s``; ``stats()`` counts the lines lost. Lines
    go to the file unbuffered, one write each, so a failure is seen at the line it hits and
    no buffered lines are held back to fail again at close.

    ``background=True`` (what ``run`` uses) turns each result into its record on the frame
    thread (a small dict: no image) and leaves the JSON and the write to a thread of the
    log's own, which drains what is queued when the sink closes: encoding and writing
    were a quarter of the frame thread's time. At most ``queue_max`` records wait; a disk
    slower than that loses lines (counted), never memory or frames.
    """

    RETRY_S = 30.0
    QUEUE_MAX = 256
    CLOSE_WAIT_S = 5.0

    def __init__(self, path: str, *, retry_s: float = RETRY_S,
                 clock: Callable[[], float] = time.monotonic, background: bool = False,
                 queue_max: int = QUEUE_MAX):
        self.path = path
        self._fh = open(_open_log(path), "wb", buffering=0)
        self.retry_s = retry_s
        self._clock = clock
        self._paused_until: Optional[float] = None
        self._torn = False            # a failed write may have left half a line
        self.lost = 0
        self._warn = Throttle(log, 600.0, clock)
        self.queue_max = queue_max
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        if background:
            self._thread = threading.Thread(target=self._drain, name="frame-log", daemon=True)
            self._thread.start()

    def on_frame(self, frame: Frame, result: FrameResult) -> None:
        if self._thread is None:
            self._emit(result.to_json())
            return
        if self._paused():
            return
        record = result.to_json()
        with self._cond:
            if len(self._queue) >= self.queue_max:
                self.lost += 1
                self._warn.warning("frame log %s: the disk is not keeping up; lines are dropped",
                                   self.path)
                return
            self._queue.append(record)
            self._cond.notify()

    def _drain(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if not self._queue:
                    return
                record = self._queue.popleft()
            self._emit(record)

    def _paused(self) -> bool:
        if self._paused_until is not None and self._clock() < self._paused_until:
            with self._cond:
                self.lost += 1
            return True
        return False

    def _emit(self, record: dict) -> None:
        if self._paused():
            return
        line = (dumps(record) + "\n").encode("utf-8")
        try:
            self._write((b"\n" if self._torn else b"") + line)
        except BlockingIOError:    # a FIFO's reader lagging: this line only, no pause
            with self._cond:
                self.lost += 1
            self._warn.warning("frame log %s: the reader is not keeping up; lines are dropped",
                               self.path)
            return
        except OSError as exc:
            with self._cond:
                self.lost += 1
            self._paused_until = self._clock() + self.retry_s
            self._warn.error("frame log %s: %s; paused, retrying every %.0f s (the loop goes on)",
                             self.path, exc.strerror or exc, self.retry_s)
            return
        if self._paused_until is not None:
            self._paused_until = None
            log.info("frame log %s: writing again (%d lines lost so far)", self.path, self.lost)

    def _write(self, data: bytes) -> None:
        view, done = memoryview(data), 0
        try:
            while done < len(data):
                n = self._fh.write(view[done:])
                if n is None:          # a FIFO whose reader is behind (opened non-blocking)
                    raise BlockingIOError(errno.EAGAIN, "the reader is not keeping up")
                if not n:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += n
        finally:
            self._torn = 0 < done < len(data) or (self._torn and done == 0)

    def stats(self) -> dict:
        return {"frame_log": {"lines_lost": self.lost, "paused": self._paused_until is not None}}

    def _close(self) -> None:
        if self._thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify()
            # What is queued is written first; a write stuck for longer (a hung network
            # disk) is left behind rather than holding up the stop.
            self._thread.join(self.CLOSE_WAIT_S)
            if self._thread.is_alive():
                log.warning("frame log %s: %d lines still queued at close were not written",
                            self.path, len(self._queue))
                return
        try:
            self._fh.close()
        except OSError:
            pass


def _open_log(path: str) -> int:
    """The frame log's descriptor. Opening a FIFO for writing blocks until a reader comes,
    so it is opened non-blocking: with no reader that is an error now, and a reader that
    falls behind (a pipe through ``/dev/stdout`` too) costs lines, never a stalled loop."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o666)
    except OSError as exc:
        if exc.errno == errno.ENXIO and stat.S_ISFIFO(os.stat(path).st_mode):
            raise OSError(errno.ENXIO, "it is a FIFO with no reader (start the reader first)") from None
        raise
    if stat.S_ISFIFO(os.fstat(fd).st_mode):
        log.info("frame log %s is a FIFO: lines its reader cannot take at once are dropped", path)
    else:   # a file, a terminal or a device keeps ordinary writes
        os.set_blocking(fd, True)
    return fd


class Loop:
    def __init__(self, source: FrameSource, scorer: Scorer, sinks: "list[Sink]" = (), *,
                 max_frames: Optional[int] = None, faults: ServiceConfig = ServiceConfig(),
                 on_reload: Optional[Callable[[], None]] = None):
        self.source = source
        self.scorer = scorer
        self.sinks = list(sinks)
        self.max_frames = max_frames
        self.faults = faults
        self.stats = LoopStats()
        self.stop_event = threading.Event()
        self.reload_requested = threading.Event()
        self.on_reload = on_reload
        self.last_result: Optional[FrameResult] = None
        self.last_frame: Optional[Frame] = None
        self._closed = False

    # --- one frame -------------------------------------------------------------------
    def step(self, frame: Frame) -> FrameResult:
        t0 = time.perf_counter()
        result = self.scorer.score(frame)
        for sink in self.sinks:
            sink.on_frame(frame, result)
        self.stats.add((time.perf_counter() - t0) * 1e3, time.monotonic())
        self.last_result, self.last_frame = result, frame
        return result

    def _read(self) -> Optional[Frame]:
        """The next frame; faults are retried with backoff, then raised."""
        while not self.stop_event.is_set():
            try:
                frame = self.source.read()
            except FocusAssistError as exc:
                if isinstance(exc, SourceError) or self.source.live:
                    frame, err = None, str(exc)
                else:
                    raise
            except Exception as exc:  # a driver fault must not kill the service
                if not self.source.live:
                    raise SourceError(f"{self.source.name}: {exc}") from exc
                frame, err = None, f"{exc.__class__.__name__}: {exc}"
            else:
                if frame is not None or not self.source.live or self.source.closed:
                    self.stats.consecutive_faults = 0
                    return frame
                err = "camera returned no frame"
            self.stats.faults += 1
            self.stats.consecutive_faults += 1
            self.stats.last_fault = err
            for sink in self.sinks:
                sink.on_fault(err)
            n, limit = self.stats.consecutive_faults, self.faults.max_source_failures
            if n >= limit:
                raise SourceError(f"{self.source.name}: giving up after {n} consecutive faults ({err})")
            delay = self.faults.backoff(n)
            log.warning("source fault %d/%d: %s; retrying in %.1f s", n, limit, err, delay)
            self.stop_event.wait(delay)
        return None

    def run(self) -> LoopStats:
        """Run until max_frames, the end of input, or ``stop()``."""
        try:
            while not self.stop_event.is_set():
                if self.max_frames is not None and self.stats.frames >= self.max_frames:
                    break
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    if self.on_reload:
                        self.on_reload()
                frame = self._read()
                if frame is None:
                    break
                self.step(frame)
        finally:
            self.stats.ended = time.monotonic()
        return self.stats

    def stop(self) -> None:
        self.stop_event.set()

    def sink_stats(self) -> dict:
        out: dict = {}
        for sink in self.sinks:
            out.update(sink.stats())
        return out

    def close(self) -> None:
        """Close sinks (motor de-energised, captures finished) and the source. Idempotent."""
        if self._closed:
            return
        self._closed = True
        close_all(self.sinks)
        try:
            self.scorer.close()
        except Exception:
            log.exception("closing the scorer failed")
        try:
            self.source.close()
        except Exception:
            log.exception("closing the source failed")
