"""The motor position, persisted atomically in the state directory.

A stepper has no encoder: after a restart the only knowledge of where the lens is comes
from this file. It is written with ``device.common.atomic`` (temp file, fsync, rename), so a
crash or power cut mid-write leaves the previous position intact. A move in progress is
recorded as ``"moving": true`` first; finding that flag on start-up means the process died
mid-move and the position is uncertain (the caller warns and suggests ``motor home``).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from device.common.atomic import atomic_write_json
from device.errors import MotorError

FILE_NAME = "motor-position.json"


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
        """The saved position, or None if there is none. A file that cannot be read is a
        ``MotorError`` (with the fix), never a silent guess."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MotorError(f"cannot read the motor position file {self.path}: "
                             f"{exc.strerror}") from None
        try:
            data = json.loads(text)
            pos = data["position"]
            if isinstance(pos, bool) or not isinstance(pos, int):
                raise TypeError("position is not an integer")
            return StoredPosition(position=pos, moving=bool(data.get("moving", False)),
                                  driver=str(data.get("driver", "")),
                                  saved_at=float(data.get("saved_at", 0.0)))
        except (ValueError, KeyError, TypeError) as exc:
            raise MotorError(f"motor position file {self.path} is damaged ({exc}); delete it "
                             "and run 'focus-assist motor home' or 'zero'") from None

    def save(self, position: int, *, moving: bool = False, driver: str = "") -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"position": int(position), "moving": bool(moving),
                                      "driver": driver, "saved_at": round(time.time(), 3)})
