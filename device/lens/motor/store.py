"""The motor position, persisted atomically in the state directory.

A stepper has no encoder: after a restart the only knowledge of where the lens is comes
from this file. It is written with ``device.common.atomic`` (temp file, fsync, rename), so a
crash or power cut mid-write leaves the previous position intact. A move in progress is
recorded as ``"moving": true`` first; finding that flag on start-up means the process died
mid-move and the position is uncertain (the caller warns and suggests ``motor home``).
"""
from __future__ import annotations

import json
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from device.common.atomic import atomic_write_json
from device.errors import MotorError

FILE_NAME = "motor-position.json"
# The file is about 80 bytes; anything far larger is not one this program wrote.
MAX_BYTES = 64 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredPosition:
    position: int
    moving: bool
    driver: str
    saved_at: float


class PositionStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self) -> Optional[StoredPosition]:
        """The saved position, or None if there is none. A damaged file (not JSON, not UTF-8,
        not a regular file, nested too deep, no integer position) is renamed aside with a
        warning and None returned: the motor then starts uncalibrated and asks to be homed.
        A file that cannot be read at all is a ``MotorError`` (with the fix)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MotorError(f"cannot read the motor position file {self.path}: "
                             f"{exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            # Reading a FIFO would block start-up; a huge file is not ours.
            return self._set_aside("not a small regular file")
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise MotorError(f"cannot read the motor position file {self.path}: "
                             f"{exc.strerror}") from None
        try:
            data = json.loads(raw.decode("utf-8"))
            pos = data["position"]
            if isinstance(pos, bool) or not isinstance(pos, int):
                raise TypeError("position is not an integer")
            return StoredPosition(position=pos, moving=bool(data.get("moving", False)),
                                  driver=str(data.get("driver", "")),
                                  saved_at=float(data.get("saved_at", 0.0)))
        except UnicodeDecodeError:
            return self._set_aside("not UTF-8 text")
        except RecursionError:
            return self._set_aside("nested too deeply")
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            return self._set_aside(str(exc) or exc.__class__.__name__)

    def _set_aside(self, why: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            raise MotorError(f"motor position file {self.path} is damaged ({why}) and cannot be "
                             f"moved aside ({exc.strerror}); delete it and run "
                             "'focus-assist motor home' or 'zero'") from None
        log.warning("motor position file %s was damaged (%s); moved it to %s and starting "
                    "uncalibrated", self.path, why, aside.name)
        return None

    def save(self, position: int, *, moving: bool = False, driver: str = "") -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"position": int(position), "moving": bool(moving),
                                      "driver": driver, "saved_at": round(time.time(), 3)})
