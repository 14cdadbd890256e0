"""argparse value types shared by every command line (device, train): one message style."""
from __future__ import annotations

import argparse
import math
from typing import Callable, Optional


def number(kind: type = int, lo: Optional[float] = None, hi: Optional[float] = None,
           *, above: bool = False, what: str = "") -> Callable[[str], float]:
    """A parser for ``kind`` (int or float) within ``lo``..``hi`` (``above``: strictly > lo)."""
    noun = what or ("a whole number" if kind is int else "a number")

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not math.isfinite(v):   # NaN passes every range test below
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if lo is not None and (v <= lo if above else v < lo):
            raise argparse.ArgumentTypeError(f"must be {'>' if above else '>='} {lo}, got {v}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi}, got {v}")
        return v

    return parse


positive_int = number(int, 0, above=True)
nonneg_int = number(int, 0)
positive_float = number(float, 0, above=True)


def print_error(prog: str, message, kind: str = "error") -> None:
    """The one line every command prints for bad input (then exits 2): ``prog: error: ...``."""
    import sys

    print(f"{prog}: {kind}: {message}", file=sys.stderr, flush=True)


def roi_arg(text: str):
    """``--roi X,Y,W,H`` for argparse (the one parser, ``device.common.roi.parse_roi``)."""
    from device.common.roi import parse_roi
    from device.errors import ConfigError

    try:
        return parse_roi(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
