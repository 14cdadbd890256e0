"""``focus-assist inspect [--json] [--grid ROWSxCOLS] [--plot FILE.png] IMAGE...``.

The images are one focus sweep in lens order. Prints one JSON object (``--json``, or when
piped) or the summary in words. When every image has a capture sidecar (``<stem>.json``
with ``lens_position``, as ``run --capture-when-sharp`` and ``--bracket`` write them) the
fit is repeated in motor steps under ``steps``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from device.errors import InputError

log = logging.getLogger(__name__)


def _grid_arg(text: str) -> tuple[int, int]:
    from device.optics.inspect import parse_grid

    try:
        return parse_grid(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub) -> None:
    i = sub.add_parser("inspect", help="sensor tilt and field curvature from a focus sweep")
    i.add_argument("--json", action="store_true", help="one JSON object (the default when piped)")
    i.add_argument("--grid", type=_grid_arg, default=(3, 3), metavar="ROWSxCOLS",
                   help="regions to find best focus in (default 3x3)")
    i.add_argument("--plot", metavar="FILE.png",
                   help="also draw the best-focus map over the sharpest frame into FILE")
    i.add_argument("images", nargs="+", metavar="IMAGE", help="the sweep's images, in lens order")
    i.set_defaults(func=cmd_inspect)


def sidecar_positions(paths: Sequence[str]) -> Optional[list[float]]:
    """Each image's ``lens_position`` from its capture sidecar, or None unless all have one."""
    out = []
    for p in paths:
        side = Path(p).with_suffix(".json")
        try:
            pos = json.loads(side.read_text(encoding="utf-8")).get("lens_position")
        except (OSError, ValueError, AttributeError):
            return None
        if not isinstance(pos, (int, float)) or isinstance(pos, bool):
            return None
        out.append(float(pos))
    return out


def cmd_inspect(args) -> int:
    from device.common.preprocess import to_grey
    from device.optics.inspect import inspect_sweep
    from device.sources.files import read_image

    if len(args.images) < 3:
        raise InputError(f"inspect needs at least 3 frames of a sweep, got {len(args.images)}")
    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise InputError(f"--plot {args.plot}: give a .png or .jpg file name")
    greys = [to_grey(read_image(p)) for p in args.images]
    positions = sidecar_positions(args.images)
    ins = inspect_sweep(greys, args.grid, lens_positions=positions)
    if args.plot:
        from device.optics.plot import write_plot

        write_plot(args.plot, ins, read_image(args.images[ins.sharpest_frame]))
    out = ins.to_json()
    if args.plot:
        out["plot"] = args.plot
    if args.json or not sys.stdout.isatty():
        from device.common.jsonio import dumps

        print(dumps(out), flush=True)
    else:
        print(ins.summary, flush=True)
        if args.plot:
            print(f"plot: {args.plot}", flush=True)
    return 0
