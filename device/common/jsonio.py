"""The one conversion of results, statuses and stats to JSON-ready values.

The frame log, ``score`` output, capture sidecars and ``/api/status`` all go through
``to_jsonable`` so a numpy value, a dataclass or an enum is written the same way
everywhere: arrays as lists rounded to 4 decimals (the log stays readable and small),
numpy scalars as Python numbers, paths and enums as text, non-finite floats as null
(JSON has no NaN).
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from typing import Any

import numpy as np

DECIMALS = 4


def to_jsonable(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps`` accepts with ``allow_nan=False``."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc":
            arr = np.round(value.astype(float), DECIMALS)
            if not np.isfinite(arr).all():
                return [to_jsonable(v) for v in arr.tolist()] if arr.ndim == 1 else \
                    [to_jsonable(row) for row in arr]
            return arr.tolist()
        return value.tolist()
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if hasattr(value, "to_json"):
        return to_jsonable(value.to_json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def dumps(value: Any, **kw) -> str:
    """``json.dumps`` of ``to_jsonable(value)``."""
    return json.dumps(to_jsonable(value), allow_nan=False, **kw)


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def read_json_file(path: str | os.PathLike, *, max_bytes: int = 64 << 20) -> Any:
    """A JSON file that a program wrote and a crash, a full disk or a person may have
    damaged: ValueError with a short reason for anything that is not plain JSON (too
    big, not UTF-8, NaN or Infinity, nested too deep); OSError when it cannot be read."""
    with open(path, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
