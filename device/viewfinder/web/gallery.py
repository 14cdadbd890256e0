"""The captures gallery: ``GET /api/captures``, ``GET /captures/NAME`` and its thumbnail.

What is served is decided by the name and by the file itself, never by where a path
leads: a name is one plain file name (letters, digits, ``.``, ``_``, ``-``; no separator,
backslash, NUL, ``%``, nothing hidden, so neither ``..`` nor the ``.fa-tmp`` files of a
write in progress), with a capture's extension, of a *regular* file directly in the
capture folder. A symbolic link is refused even when it points inside the folder (where it
points can change between a check and a read), and the file is opened with
``O_NOFOLLOW`` and checked again on the open descriptor, so a swap after the check
serves nothing.

Thumbnails are made with OpenCV (JPEG's reduced-size decoding, then an area resize to at
most ``THUMB_PX``) and kept in a small cache keyed by the file's identity (inode, size,
mtime): a capture is written once and never changed, so an entry stays right.
"""
from __future__ import annotations

import datetime as _dt
import errno
import logging
import os
import re
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional, Union

import cv2
import numpy as np

from device.common.atomic import is_temp_name
from device.common.jsonio import read_json_file
from device.viewfinder.web.api import ApiError, Reply

log = logging.getLogger(__name__)

TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
         ".dng": "image/x-adobe-dng", ".json": "application/json"}
THUMB_TYPES = (".jpg", ".jpeg", ".png")      # OpenCV cannot read a DNG
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}\Z")
THUMB_PX = 240
THUMB_CACHE = 64
THUMB_SOURCE_MAX = 64 << 20
SIDECAR_MAX = 1 << 20
LIST_MAX = 200
BRACKET_PREFIX = "bracket-"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)     # a FIFO must not hang the open


@dataclass(frozen=True)
class CaptureItem:
    name: str
    time: str                       # ISO 8601, UTC: the sidecar's captured_at, else mtime
    size: int                       # bytes
    trigger: Optional[str]          # trap | manual | bracket (the sidecar's)
    verdict: Optional[str]          # the focus net's label, when a net scored it
    sharp_prob: Optional[float]
    decided_by: Optional[str]       # which rule let a trap capture through (capture.decide)
    lens_position: Optional[float]
    focus: Optional[float]
    thumb: bool                     # a thumbnail can be made
    kind: str = "capture"


@dataclass(frozen=True)
class BracketGroup:
    name: str                       # the manifest, bracket-<UTC time>.json
    time: str
    size: int                       # of every frame together
    best_position: Optional[int]
    step: Optional[int]
    frames: tuple                   # CaptureItem, in lens order
    kind: str = "bracket"


@dataclass(frozen=True)
class Listing:
    dir: str
    items: tuple                    # CaptureItem | BracketGroup, newest first
    total: int                      # items in the folder
    truncated: bool


def check_name(name: str) -> str:
    """``name`` if it may name a served file; ApiError (400 malformed, 404 hidden or not a
    capture's type) otherwise. Nothing is decoded: no capture name needs ``%``."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0%") or len(name) > 255:
        raise ApiError(400, "not a capture name")
    if name.startswith(".") or is_temp_name(name):
        raise ApiError(404, "hidden and temporary files are not served")
    if not NAME.match(name):
        raise ApiError(400, "not a capture name")
    if Path(name).suffix.lower() not in TYPES:
        raise ApiError(404, "not a capture file")
    return name


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat()


def _number(v) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class Gallery:
    def __init__(self, directory: Union[str, os.PathLike]):
        self.dir = Path(directory)
        self._lock = threading.Lock()
        self._thumbs: OrderedDict = OrderedDict()
        self._sidecars: dict = {}          # (name, identity) -> parsed sidecar

    # --- one file --------------------------------------------------------------------
    def open(self, name: str) -> tuple[BinaryIO, os.stat_result]:
        """The regular file ``name`` directly in the folder, opened without following links."""
        path = self.dir / check_name(name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise ApiError(404, f"no capture {name}") from None
        except OSError as exc:
            raise ApiError(404, f"cannot read {name}: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            raise ApiError(403, f"{name} is a symbolic link: links are never served")
        if not stat.S_ISREG(st.st_mode):
            raise ApiError(403, f"{name} is not a regular file")
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
        except OSError as exc:
            raise ApiError(403 if exc.errno == errno.ELOOP else 404, f"cannot open {name}") from None
        fh = os.fdopen(fd, "rb")
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            fh.close()
            raise ApiError(409, f"{name} changed while it was opened")
        return fh, now

    def download(self, name: str) -> Reply:
        fh, st = self.open(name)
        ctype = TYPES[Path(name).suffix.lower()]
        return Reply(ctype, file=fh, length=st.st_size,
                     headers={"Content-Disposition": f'attachment; filename="{name}"'})

    def thumbnail(self, name: str) -> Reply:
        if Path(check_name(name)).suffix.lower() not in THUMB_TYPES:
            raise ApiError(404, f"no thumbnail for {name}")
        fh, st = self.open(name)
        key = (name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        try:
            with self._lock:
                jpeg = self._thumbs.get(key)
                if jpeg is not None:
                    self._thumbs.move_to_end(key)
            if jpeg is None:
                if st.st_size > THUMB_SOURCE_MAX:
                    raise ApiError(413, f"{name} is too large for a thumbnail")
                jpeg = make_thumbnail(fh.read(THUMB_SOURCE_MAX))
                with self._lock:
                    self._thumbs[key] = jpeg
                    while len(self._thumbs) > THUMB_CACHE:
                        self._thumbs.popitem(last=False)
        finally:
            fh.close()
        return Reply("image/jpeg", body=jpeg,
                     headers={"Content-Disposition": f'inline; filename="thumb-{Path(name).stem}.jpg"'})

    # --- the listing -------------------------------------------------------------------
    def listing(self) -> Listing:
        try:
            entries = [e for e in os.scandir(self.dir)
                       if not e.name.startswith(".") and not is_temp_name(e.name)
                       and NAME.match(e.name) and e.is_file(follow_symlinks=False)]
        except FileNotFoundError:
            return Listing(str(self.dir), (), 0, False)
        except OSError as exc:
            raise ApiError(503, f"cannot list {self.dir}: {exc.strerror}") from None
        stats = {}
        for e in entries:
            try:
                stats[e.name] = e.stat(follow_symlinks=False)
            except OSError:
                continue
        images = {n: st for n, st in stats.items()
                  if Path(n).suffix.lower() in TYPES and Path(n).suffix.lower() != ".json"}
        items: list = []
        grouped: set = set()
        for n in stats:
            if n.startswith(BRACKET_PREFIX) and n.endswith(".json"):
                group = self._bracket(n, stats, images)
                if group is not None:
                    grouped.update(f.name for f in group.frames)
                    items.append((stats[n].st_mtime, group))
        # Sidecars are read only for what is listed: a card of 10,000 captures costs a
        # scandir and the newest LIST_MAX sidecars, not 10,000 reads.
        items += [(st.st_mtime, n) for n, st in images.items() if n not in grouped]
        items.sort(key=lambda p: (p[0], p[1] if isinstance(p[1], str) else p[1].name), reverse=True)
        shown = tuple(i if not isinstance(i, str) else self._item(i, images[i], stats)
                      for _, i in items[:LIST_MAX])
        self._forget(stats)
        return Listing(str(self.dir), shown, len(items), len(items) > LIST_MAX)

    def _item(self, name: str, st: os.stat_result, stats: dict) -> CaptureItem:
        side = self._sidecar(Path(name).stem + ".json", stats)
        scores = side.get("scores") if isinstance(side.get("scores"), dict) else {}
        peak = side.get("peak") if isinstance(side.get("peak"), dict) else {}
        decision = peak.get("decision") if isinstance(peak.get("decision"), dict) else {}
        label = scores.get("label")
        when = side.get("captured_at")
        return CaptureItem(
            name=name, time=when if isinstance(when, str) else _iso(st.st_mtime),
            size=int(st.st_size),
            trigger=side.get("trigger") if isinstance(side.get("trigger"), str) else None,
            verdict=label if isinstance(label, str) else None,
            sharp_prob=_number(scores.get("sharp_prob")),
            decided_by=decision.get("decided_by") if isinstance(decision.get("decided_by"), str) else None,
            lens_position=_number(side.get("lens_position")), focus=_number(scores.get("focus")),
            thumb=Path(name).suffix.lower() in THUMB_TYPES)

    def _bracket(self, name: str, stats: dict, images: dict) -> Optional[BracketGroup]:
        manifest = self._sidecar(name, stats)
        frames = manifest.get("frames")
        if not isinstance(frames, list):
            return None
        members = [f["image"] for f in frames
                   if isinstance(f, dict) and isinstance(f.get("image"), str) and f["image"] in images]
        if not members:
            return None
        items = tuple(self._item(n, images[n], stats) for n in members)
        best, step = manifest.get("best_position"), manifest.get("step")
        return BracketGroup(name=name, time=_iso(stats[name].st_mtime),
                            size=sum(i.size for i in items),
                            best_position=best if isinstance(best, int) else None,
                            step=step if isinstance(step, int) else None, frames=items)

    def _sidecar(self, name: str, stats: dict) -> dict:
        """A sidecar or manifest as a dict ({} when missing, damaged or too large)."""
        st = stats.get(name)
        if st is None:
            return {}
        key = (name, st.st_ino, st.st_size, st.st_mtime_ns)
        if key in self._sidecars:
            return self._sidecars[key]
        try:
            data = read_json_file(self.dir / name, max_bytes=SIDECAR_MAX)
        except (OSError, ValueError) as exc:
            log.debug("gallery: %s unreadable: %s", name, exc)
            data = {}
        data = data if isinstance(data, dict) else {}
        with self._lock:
            self._sidecars[key] = data
        return data

    def _forget(self, stats: dict) -> None:
        """Drop cached sidecars of files that are gone (the cache follows the folder)."""
        with self._lock:
            for key in [k for k in self._sidecars if k[0] not in stats]:
                del self._sidecars[key]


def make_thumbnail(data: bytes, max_px: int = THUMB_PX) -> bytes:
    """A JPEG of at most ``max_px`` on its longer side. The capture is decoded at an eighth
    of its size first (libjpeg scales while decoding, far cheaper than decoding it all);
    when that is smaller than the thumbnail, again at the largest reduction that is not."""
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_REDUCED_COLOR_8)
    if img is None:
        raise ApiError(415, "the capture cannot be decoded for a thumbnail")
    if max(img.shape[:2]) < max_px:
        side = max(img.shape[:2]) * 8          # about the capture's own size
        flag = next((f for k, f in ((4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
                     if side // k >= max_px), cv2.IMREAD_COLOR)
        img = cv2.imdecode(buf, flag)
        if img is None:
            raise ApiError(415, "the capture cannot be decoded for a thumbnail")
    h, w = img.shape[:2]
    k = max_px / max(h, w)
    if k < 1:
        img = cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))),
                         interpolation=cv2.INTER_AREA)
    ok, out = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 75])
    if not ok:
        raise ApiError(500, "thumbnail encoding failed")
    return out.tobytes()
