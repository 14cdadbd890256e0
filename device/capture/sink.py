"""Capture-when-sharp: save a still each time the subject passes through focus.

``CaptureSink`` is a loop sink. Per frame it only feeds ``device.capture.trap.TrapFocus`` and
keeps references to the best frames of an open peak (cheap); encoding and every file
write happen on one worker thread, so a slow SD card never stalls the viewfinder.

A capture fires when the trap detector confirms a peak of the noise-robust focus value,
the focus net does not veto it (``device.capture.decide``: only a net confident the best
frame is blurred, on a weak rise, can; the sidecar's ``peak.decision`` says which rule
decided), the cooldown has passed and the per-run cap is not reached. Below ``capture.min_free_mb`` of free space capturing
pauses (warning, ``stats()["capture"]["low_disk"]``) and resumes when space returns.

Files: ``<prefix>-<UTC time>-f<frame index>.<jpg|png|dng>`` and a JSON sidecar with the
same stem, each written to a hidden temporary name marked ``.fa-tmp``, fsync'd and linked
into place (``device.common.atomic``), never replacing an existing file. The image is
written and fsync'd first, its sidecar is linked into place next, and the image last: a
visible image therefore always has its sidecar, even after ``kill -9`` (what a kill can
leave is a sidecar whose image is missing, plus the image's hidden temporary file).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import datetime as _dt
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from device.common.atomic import TEMP_MARK, atomic_write_json, commit, is_temp_name, stage
from device.common.digest import sha256
from device.config import CaptureConfig, Config
from device.errors import InputError
from device.capture.decide import DECIDERS, NET_AGREES, decide_peak, peak_rise
from device.capture.trap import PeakEvent, TrapFocus
from device.common.jsonio import to_jsonable
from device.loop.result import FrameResult
from device.loop.sink import Sink
from device.service.logs import Throttle

log = logging.getLogger(__name__)

EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "dng": ".dng"}
DISK_CHECK_S = 2.0
MAX_NAME_TRIES = 1000
STALE_TEMP_S = 120.0
WRITE_TEST = ".write-test."
WARN_EVERY_S = 10.0      # a held shutter or a stalled card repeats a warning every frame


def ensure_writable_dir(path: str | os.PathLike, what: str = "capture dir") -> Path:
    """Create ``path`` if needed and prove it takes a file; InputError (one line) if not."""
    p = Path(path).expanduser()
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{what} {p}: cannot create it ({exc.strerror or exc})") from None
    if not p.is_dir():
        raise InputError(f"{what} {p}: is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=WRITE_TEST, suffix=TEMP_MARK, dir=p)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise InputError(f"{what} {p}: is not writable ({exc.strerror or exc})") from None
    return p


def is_own_temp(name: str, prefix: str) -> bool:
    """A temporary file this program named and marked: a capture of ``prefix`` or the
    write test, with ``TEMP_MARK``. Anything else in the folder is the user's."""
    return is_temp_name(name) and (name.startswith(f".{prefix}-") or name.startswith(WRITE_TEST))


def remove_stale_temps(folder: Path, prefix: str) -> int:
    """Delete temporary files a crash left behind: only ``is_own_temp`` names."""
    n = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for e in entries:
        if e.is_file(follow_symlinks=False) and is_own_temp(e.name, prefix):
            try:
                # Only old ones: a second process may be writing into the folder right now.
                if time.time() - e.stat(follow_symlinks=False).st_mtime < STALE_TEMP_S:
                    continue
                os.unlink(e.path)
                n += 1
            except OSError:
                pass
    if n:
        log.info("capture: removed %d unfinished temporary file(s) from %s", n, folder)
    return n


def encode_image(img: np.ndarray, fmt: str, jpeg_quality: int = 92) -> bytes:
    import cv2

    if fmt == "png":
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise ValueError(f"could not encode a {img.shape} image as {fmt}")
    return buf.tobytes()


def _sha256_file(path: Path) -> str:
    h = sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class CaptureWriter:
    """Writes one capture (image + sidecar) under a fresh name; never overwrites."""

    def __init__(self, directory: Path, prefix: str = "focus"):
        self.dir = Path(directory)
        self.prefix = prefix

    def _stem(self, frame_index: int, when: float, suffix: str) -> str:
        stamp = _dt.datetime.fromtimestamp(when, _dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        return f"{self.prefix}-{stamp}-f{frame_index:06d}{suffix}"

    def write(self, *, ext: str, frame_index: int, sidecar: dict,
              data: Optional[bytes] = None, writer: Optional[Callable[[Path], None]] = None,
              when: Optional[float] = None, tag: str = "") -> Path:
        """Stage the image (bytes, or ``writer(tmp_path)``), link its sidecar into place,
        then the image: an image is never visible without its sidecar."""
        when = time.time() if when is None else when
        first = self.dir / f"{self._stem(frame_index, when, tag)}{ext}"
        tmp = stage(first, writer if data is None else (lambda t: t.write_bytes(data)))
        try:
            meta = dict(sidecar)
            meta["bytes"] = tmp.stat().st_size
            meta["sha256"] = sha256(data).hexdigest() if data is not None else _sha256_file(tmp)
            meta["captured_at"] = _dt.datetime.fromtimestamp(when, _dt.timezone.utc).isoformat()
            for n in range(MAX_NAME_TRIES):
                stem = self._stem(frame_index, when, tag + (f"-{n}" if n else ""))
                img_path = self.dir / f"{stem}{ext}"
                side_path = self.dir / f"{stem}.json"
                if img_path.exists() or side_path.exists():
                    continue
                meta["image"] = img_path.name
                try:
                    atomic_write_json(side_path, meta, overwrite=False)
                except FileExistsError:   # taken between the check and the link: next name
                    continue
                try:
                    return commit(tmp, img_path, overwrite=False)
                except FileExistsError:
                    side_path.unlink(missing_ok=True)
                    continue
            raise FileExistsError(f"no free capture name for frame {frame_index} in {self.dir}")
        finally:
            tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class CaptureStatus:
    """What ``/api/status`` shows under ``capture`` and ``run --stats`` under ``capture``."""
    enabled: bool
    dir: str
    state: str                     # the trap's state, or "off"
    captures: int                  # images saved this run
    last: Optional[str]            # path of the newest one
    low_disk: bool
    free_mb: Optional[float]
    cnn: Optional[bool]            # whether the CNN's verdict gates captures (None: no frame yet)
    skipped: dict                  # peaks and frames not saved, by reason

    @property
    def count(self) -> int:
        return self.captures

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["count"] = self.captures      # the web page's name for it
        return out


# (path, format, jpeg quality) -> None: a full-resolution still from the camera itself
StillCapture = Callable[[Path, str, int], None]


class CaptureSink(Sink):
    """Loop sink: trap-focus captures, plus ``capture_now()`` for a manual shutter.

    ``lens_position()`` is read with each frame for the sidecar (the motor's or the
    simulated lens's position); ``still`` takes full-resolution stills and DNGs on a Pi
    camera (``capture.pi_mode``); without it the displayed frame is saved.
    """

    def __init__(self, cfg: CaptureConfig, directory: str | os.PathLike, *,
                 source_name: Optional[str] = None,
                 lens_position: Optional[Callable[[], Optional[float]]] = None,
                 still: Optional[StillCapture] = None, roi=None,
                 free_bytes: Optional[Callable[[Path], int]] = None, queue_size: int = 16):
        self.cfg = cfg
        self.dir = Path(directory).expanduser()
        self.source_name = source_name
        self._lens = lens_position
        self._still = still
        self.roi = roi
        self._free_bytes = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self._dir_ready = False
        if cfg.enabled:   # a capture dir that cannot take files is a startup error
            self._prepare_dir()
        self.trap = self._make_trap(cfg)
        self.writer = CaptureWriter(self.dir, cfg.prefix)
        self._lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue(maxsize=max(queue_size, cfg.burst * 2))
        self._latest = None
        self._last_capture_ts: Optional[float] = None
        self._disk_checked = 0.0
        self._announced_cnn = False
        self.counts = {"captures": 0, "peaks": 0, "not_sharp": 0, "cooldown": 0, "cap": 0,
                       "low_disk": 0, "dropped": 0, "errors": 0, "no_dir": 0,
                       # which rule decided each peak (device.capture.decide)
                       **{"by_" + d: 0 for d in DECIDERS}}
        self.queued = 0           # images handed to the worker (counts toward the cap)
        self.low_disk = False
        self.free_mb: Optional[float] = None
        self.last_path: Optional[str] = None
        self.cnn: Optional[bool] = None
        self._warn = Throttle(log, WARN_EVERY_S)
        self._worker = threading.Thread(target=self._work, name="capture-writer", daemon=True)
        self._worker.start()
        if cfg.enabled:
            self._check_disk(force=True)

    @staticmethod
    def _make_trap(cfg: CaptureConfig) -> TrapFocus:
        return TrapFocus(fire_ratio=cfg.fire_ratio, rearm_ratio=cfg.rearm_ratio,
                         fall_ratio=cfg.fall_ratio, history=cfg.history_frames, keep=cfg.burst,
                         confirm_frames=cfg.confirm_frames)

    def _prepare_dir(self) -> None:
        ensure_writable_dir(self.dir)
        remove_stale_temps(self.dir, self.cfg.prefix)
        self._dir_ready = True

    # --- disk space ----------------------------------------------------------------------
    def _check_disk(self, force: bool = False) -> bool:
        """True when there is room to capture; logs the transitions."""
        now = time.monotonic()
        if not force and now - self._disk_checked < DISK_CHECK_S:
            return not self.low_disk
        self._disk_checked = now
        try:
            free = self._free_bytes(self.dir if self.dir.exists() else self.dir.parent)
        except OSError:
            return not self.low_disk
        self.free_mb = free / 1e6
        low = self.free_mb < self.cfg.min_free_mb
        if low and not self.low_disk:
            log.warning("capture: only %.0f MB free in %s (floor %.0f MB): capturing paused",
                        self.free_mb, self.dir, self.cfg.min_free_mb)
        elif self.low_disk and not low:
            log.info("capture: %.0f MB free again in %s: capturing resumed", self.free_mb, self.dir)
        self.low_disk = low
        return not low

    # --- the loop side -------------------------------------------------------------------
    def on_frame(self, frame, result: FrameResult) -> None:
        self._latest = (frame, result)
        if not self.cfg.enabled:
            return
        self._check_disk()
        if self.cnn is None:
            self.cnn = result.cnn is not None
            if not self.cnn:
                log.info("capture: no focus CNN loaded; capturing on the classic focus peak alone")
        # The lens position is read now, with its frame, not when the peak is confirmed.
        # The trap may keep this frame for many frames (the best of a peak not yet
        # confirmed): without the scorer's working images (0.6 MB at 640x480), which
        # only peaking reads, on this frame's thread.
        kept = dataclasses.replace(result, working=None) if result.working is not None else result
        payload = (frame, kept, self._lens_position())
        event = self.trap.update(float(result.focus), payload=payload)
        if event is not None:
            self._on_peak(event)

    def _on_peak(self, event: PeakEvent) -> None:
        self.counts["peaks"] += 1
        best_frame, best_result, _ = event.candidates[0].payload
        decision = decide_peak(peak_rise(event.best_value, event.trough), best_result.cnn, self.cfg)
        self.counts["by_" + decision.decided_by] += 1
        if not decision.capture:
            self.counts["not_sharp"] += 1
            log.info("capture: focus peak (%.3g) at frame %d skipped: %s", event.best_value,
                     best_frame.index, decision.reason)
            return
        ts = float(best_frame.timestamp)
        if (self._last_capture_ts is not None and self.cfg.cooldown_s > 0
                and 0 <= ts - self._last_capture_ts < self.cfg.cooldown_s):
            self.counts["cooldown"] += 1
            log.info("capture: focus peak at frame %d skipped: cooldown", best_frame.index)
            return
        if not self._check_disk(force=True):
            self.counts["low_disk"] += 1
            return
        if not self.dir.is_dir():
            self.counts["no_dir"] += 1
            self._warn.warning("capture: capture dir %s is gone; focus peaks are not saved "
                               "until it is back", self.dir)
            return
        if decision.decided_by != NET_AGREES:
            log.info("capture: frame %d: %s", best_frame.index, decision.reason)
        peak = {"best_value": event.best_value, "history_max": event.history_max,
                "trough": event.trough, "frames_open": event.confirmed_at - event.opened_at,
                "decision": decision.to_json()}
        fired = False
        for rank, cand in enumerate(event.candidates):
            frame, result, lens = cand.payload
            fired |= self._enqueue(frame, result, "trap", dict(peak, rank=rank), lens)
        if fired:
            self._last_capture_ts = ts

    def capture_now(self) -> dict:
        """Save the newest frame now (the web viewfinder's shutter). Never blocks."""
        if self._latest is None:
            return {"ok": False, "reason": "no frame yet"}
        if not self._dir_ready:
            try:
                self._prepare_dir()
            except InputError as exc:
                return {"ok": False, "reason": str(exc)}
        if not self._check_disk(force=True):
            self.counts["low_disk"] += 1
            return {"ok": False, "reason": f"low disk space ({self.free_mb:.0f} MB free)"}
        frame, result = self._latest
        if not self.dir.is_dir():
            self.counts["no_dir"] += 1
            self._warn.warning("capture: capture dir %s is gone; the shutter saves nothing "
                               "until it is back", self.dir)
            return {"ok": False, "reason": f"capture dir {self.dir} is gone"}
        if not self._enqueue(frame, result, "manual", None, self._lens_position()):
            return {"ok": False, "reason": self._refusal or "busy"}
        return {"ok": True, "frame_index": int(frame.index), "dir": str(self.dir)}

    _refusal: Optional[str] = None

    def _enqueue(self, frame, result: FrameResult, trigger: str, peak: Optional[dict], lens) -> bool:
        with self._lock:
            if self.queued >= self.cfg.max_files:
                self.counts["cap"] += 1
                if self.counts["cap"] == 1:
                    log.warning("capture: %d files saved this run (capture.max_files): no more captures",
                                self.cfg.max_files)
                self._refusal = "capture.max_files reached"
                return False
            job = {"frame": frame, "result": result, "trigger": trigger, "peak": peak,
                   "lens_position": lens, "when": time.time()}
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                self.counts["dropped"] += 1
                self._warn.warning("capture: writer is behind; frame %d not saved", frame.index)
                self._refusal = "writer busy"
                return False
            self.queued += 1
            return True

    def _lens_position(self) -> Optional[float]:
        if self._lens is None:
            return None
        try:
            pos = self._lens()
        except Exception:   # a motor fault must not cost the capture
            return None
        return None if pos is None else round(float(pos), 3)

    # --- the worker side -----------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._write(job)
            except Exception as exc:
                self.counts["errors"] += 1
                if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
                    self.low_disk = True
                self._warn.error("capture: saving frame %d failed: %s", job["frame"].index, exc)
            # Not kept while waiting for the next job: the saved frame and its result
            # (1.8 MB at 640x480) would stay alive for the rest of the run.
            job = None

    def _pi_mode(self) -> Optional[str]:
        if self.cfg.pi_mode != "frame" and self._still is not None:
            return self.cfg.pi_mode
        return None

    def _write(self, job: dict) -> None:
        if not self._check_disk(force=True):
            self.counts["low_disk"] += 1
            return
        frame, result = job["frame"], job["result"]
        sidecar = self._sidecar(job)
        pi_mode = self._pi_mode()
        tag = "" if job["trigger"] == "trap" else "-manual"
        if pi_mode:
            fmt = "dng" if pi_mode == "dng" else self.cfg.format
            sidecar["format"] = fmt
            sidecar["what"] = "raw sensor data (DNG)" if fmt == "dng" else "full-resolution still"
            path = self.writer.write(ext=EXTENSIONS[fmt], frame_index=frame.index, sidecar=sidecar,
                                     writer=lambda tmp: self._still(tmp, fmt, self.cfg.jpeg_quality), when=job["when"], tag=tag)
        else:
            img = frame.display
            sidecar.update(format=self.cfg.format, what="frame", width=int(img.shape[1]),
                           height=int(img.shape[0]))
            data = encode_image(img, self.cfg.format, self.cfg.jpeg_quality)
            path = self.writer.write(ext=EXTENSIONS[self.cfg.format], frame_index=frame.index,
                                     sidecar=sidecar, data=data, when=job["when"], tag=tag)
        self.counts["captures"] += 1
        self.last_path = str(path)
        log.info("capture: saved %s (frame %d, focus %.3g%s)", path.name, frame.index,
                 result.focus,
                 f", p(sharp) {result.sharp_prob:.2f}" if result.sharp_prob is not None else "")

    def _sidecar(self, job: dict) -> dict:
        frame, result = job["frame"], job["result"]
        roi = result.roi or self.roi
        return {
            "frame_index": int(frame.index),
            "timestamp": float(frame.timestamp),
            "trigger": job["trigger"],
            "scores": to_jsonable(result.scores()),
            "cnn": result.cnn is not None,
            "peak": job["peak"],
            "lens_position": job["lens_position"],
            "roi": list(roi) if roi else None,
            "source": self.source_name,
            "settings": dataclasses.asdict(self.cfg),
        }

    # --- sink API --------------------------------------------------------------------------
    def status(self) -> CaptureStatus:
        return CaptureStatus(
            enabled=self.cfg.enabled, dir=str(self.dir),
            state=self.trap.state if self.cfg.enabled else "off",
            captures=self.counts["captures"], last=self.last_path, low_disk=self.low_disk,
            free_mb=None if self.free_mb is None else round(self.free_mb, 1), cnn=self.cnn,
            skipped={k: v for k, v in self.counts.items() if k != "captures"})

    @property
    def count(self) -> int:
        """Images saved this run."""
        return self.counts["captures"]

    def stats(self) -> dict:
        status = dataclasses.asdict(self.status())
        return {"capture": status}

    def reconfigure(self, cfg: Config) -> None:
        """SIGHUP: new trap rule and file settings; the folder stays (it was checked)."""
        new = cfg.capture
        if new.dir is not None and Path(new.dir).expanduser() != self.dir:
            log.warning("capture: capture.dir changes need a restart; keeping %s", self.dir)
        new = dataclasses.replace(new, dir=self.cfg.dir)
        if new.enabled and not self._dir_ready:
            try:
                self._prepare_dir()
            except InputError as exc:
                log.error("capture: %s; keeping captures off", exc)
                new = dataclasses.replace(new, enabled=False)
        if (new.fire_ratio, new.rearm_ratio, new.fall_ratio, new.history_frames, new.burst) != (
                self.cfg.fire_ratio, self.cfg.rearm_ratio, self.cfg.fall_ratio,
                self.cfg.history_frames, self.cfg.burst):
            self.trap = self._make_trap(new)
        self.cfg = new
        self.writer.prefix = new.prefix
        self.roi = cfg.scoring.roi

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued writes (files are left whole), then stop the worker."""
        if self._closed:
            return
        if self.cfg.enabled:
            # the stream ended during a peak's fall: it is a peak (trap.flush)
            event = self.trap.flush()
            if event is not None:
                self._on_peak(event)
        self._closed = True
        self._jobs.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            log.error("capture: writer still busy after %.0f s; unfinished captures stay as "
                      "hidden .tmp files", timeout)

def capture_dir(cfg: Config) -> Path:
    return Path(cfg.capture.dir).expanduser() if cfg.capture.dir else cfg.service.resolved_state_dir() / "captures"
