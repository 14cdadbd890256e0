"""``focus-assist defects [--json] [--sequence] [--model FILE] IMAGE_OR_VIDEO...``.

Without ``--sequence``: one JSON object per image, or per frame of a video,
``{"path", "frame"?, "defects": [{"x", "y", "kind", "confidence"}, ...]}``.
With ``--sequence``: every input is a frame of one camera; one object for the whole
sequence with the defects that stayed put while the scene around them changed, and as
``undecided`` (with the reason) what stayed put over a scene that did not change.
Coordinates are the input image's pixels.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from device.common.cli_types import number, positive_float, print_error
from device.errors import InputError

VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".h264", ".mjpeg", ".mjpg", ".webm", ".m4v"}


def add_parser(sub) -> None:
    d = sub.add_parser("defects", help="find dead, hot and stuck pixels with the defect net")
    d.add_argument("--json", action="store_true", help="JSON lines (the default when piped)")
    d.add_argument("--sequence", action="store_true",
                   help="the inputs are frames of one camera: report what persists while "
                        "the scene changes")
    d.add_argument("--model", metavar="FILE", help="defect model (default: models/defects.tflite "
                                                   "or [models] defects in the config)")
    d.add_argument("--config", help="TOML config file")
    d.add_argument("inputs", nargs="*", metavar="IMAGE_OR_VIDEO")
    add_check_arguments(d)
    d.set_defaults(func=cmd_defects)


def iter_frames(path: str) -> Iterator[tuple[Optional[int], np.ndarray]]:
    """(frame index or None for a still, BGR image) for an image or every frame of a video."""
    from device.common.preprocess import to_bgr
    from device.sources.files import VideoFile, read_image

    if Path(path).suffix.lower() not in VIDEO_EXTS:
        yield None, to_bgr(read_image(path))
        return
    with VideoFile(path) as video:
        for i, _t, bgr in video:
            yield i, bgr


def _print(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj), flush=True)
        return
    where = obj.get("path", f"{obj.get('frames')} frames")
    if "frame" in obj:
        where = f"{where} frame {obj['frame']}"
    items = ", ".join(f"{d['kind']} at ({d['x']}, {d['y']}) {d['confidence']:.2f}"
                      for d in obj["defects"])
    print(f"{where}: {len(obj['defects'])} defect(s){': ' + items if items else ''}", flush=True)


def cmd_defects(args) -> int:
    from device.config import load_config
    from device.defects.net import DefectDetector

    if args.dark or args.report:      # the sensor check and the video report (issue 7)
        return cmd_check(args)
    if not args.inputs:
        raise InputError("defects: give images or videos, or --dark N for the lens-capped sensor check")

    cfg = load_config(getattr(args, "config", None))
    as_json = args.json or not sys.stdout.isatty()
    if args.sequence:
        return _cmd_sequence(args, cfg, as_json)
    det = DefectDetector.from_config(cfg, args.model)
    status = 0
    for path in args.inputs:
        try:
            for idx, img in iter_frames(path):
                obj = {"path": path}
                if idx is not None:
                    obj["frame"] = idx
                obj["defects"] = det.detect(img)
                _print(obj, as_json)
        except InputError as exc:
            print_error("focus-assist", exc)
            status = 2
    return status


def _cmd_sequence(args, cfg, as_json: bool) -> int:
    """Every input is a frame of one camera: the persistence rule of the live map
    (``device.defects.persistence``) over all of them, with ``[defects] detector`` (or
    the defect net when ``--model`` is given) for the per-frame candidates."""
    from device.defects.net import DefectDetector
    from device.defects.persistence import DefectMap, add_frame, load_detector

    det = DefectDetector.from_config(cfg, args.model, sequence=True) if args.model else load_detector(cfg)
    dmap = DefectMap.from_config(cfg.defects)
    for path in args.inputs:
        for _, img in iter_frames(path):
            add_frame(dmap, img, det)   # a bad frame ends the run: a sequence with holes is no sequence
    if dmap.resets:
        print_error("focus-assist", f"the frame size changed {dmap.resets} time(s); only the last "
                                    f"{dmap.frames} frame(s), of one size, were used", "warning")
    undecided = dmap.undecided()
    if undecided:
        print_error("focus-assist", f"{len(undecided)} point(s) stayed put while the scene around "
                                    "them did not change: a defect cannot be told from a bright "
                                    "point of the scene there (listed as undecided); move, refocus "
                                    "or relight, or run the lens-capped check: defects --dark 16",
                    "warning")
    _print({"paths": list(args.inputs), "frames": dmap.frames,
            "method": "net" if det is not None else "classic",
            "defects": dmap.confirmed(), "undecided": undecided}, as_json)
    return 0


# --- the lens-capped sensor check and the video report (device.defects.persistence, device.defects.video_report)

_count = number(int, 1, 10000, what="a frame count")


def add_check_arguments(d) -> None:
    g = d.add_argument_group("sensor check (lens capped) and video report")
    g.add_argument("--dark", type=_count, metavar="N",
                   help="capture N dark frames (lens capped) from --source and map hot/stuck pixels")
    g.add_argument("--flat", type=_count, metavar="N",
                   help="then N flat frames (evenly lit, uncapped): finds dead pixels, tells stuck from hot")
    g.add_argument("--source", help="frame source for --dark/--flat (default: the config's, usually auto)")
    g.add_argument("--flat-source", help="a different source for the flat frames (e.g. a sim spec)")
    g.add_argument("--out", metavar="DIR", help="where --dark writes defects.json and defects.csv "
                                                "(default: ./sensor-check-<time>)")
    g.add_argument("--sigma", type=positive_float, default=6.0, help="--dark threshold in noise sigmas (default 6)")
    g.add_argument("--report", metavar="DIR", help="scan each VIDEO and write a quality report into DIR")
    g.add_argument("--roi", help="focus ROI X,Y,W,H for --report (default: whole frame)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def _grab(spec: str, n: int, cfg, what: str) -> tuple[list, str, object]:
    from device.sources import open_source

    src = open_source(spec, cfg)
    frames = []
    try:
        for _ in range(n):
            f = src.read()
            if f is None:
                raise InputError(f"{src.name}: ended after {len(frames)} of {n} {what} frames")
            frames.append(f.display.copy())
        return frames, src.name, getattr(src, "defects", None)
    finally:
        src.close()


def _dpc_warning(source_name: str) -> Optional[str]:
    """The HQ camera hides single-pixel defects unless its DPC is off (see README)."""
    if "picamera2" not in source_name:
        return None
    try:
        val = Path("/sys/module/imx477/parameters/dpc_enable").read_text().strip()
    except OSError:
        return None
    if val not in ("0", "N", "n"):
        return ("imx477 dpc_enable is on: the sensor corrects defective pixels itself, so this "
                "check cannot see them (see README, Pixel defects)")
    return None


def cmd_check(args) -> int:
    import time as _time

    from device.config import load_config
    from device.defects.sensor_check import sensor_check, write_check

    cfg = load_config(getattr(args, "config", None))
    if args.report:
        return _cmd_report(args, cfg)
    if args.inputs:
        raise InputError("defects --dark takes no IMAGE_OR_VIDEO arguments (it captures from --source)")
    spec = args.source or cfg.source.spec
    darks, name, _ = _grab(spec, args.dark, cfg, "dark")
    warn = _dpc_warning(name)
    if warn:
        print_error("focus-assist", warn, "warning")
    flats = None
    if args.flat:
        flat_spec = args.flat_source
        if flat_spec is None:
            if not sys.stdin.isatty():
                raise InputError("--flat without --flat-source needs a terminal to say when the "
                                 "lens cap is off; give --flat-source SPEC")
            input("Remove the lens cap, point the camera at an evenly lit surface, press Enter: ")
            flat_spec = spec
        flats, _, _ = _grab(flat_spec, args.flat, cfg, "flat")
    try:
        check = sensor_check(darks, flats, k=args.sigma)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    check["meta"].update(source=name, dpc_warning=warn)
    out = Path(args.out or f"sensor-check-{_time.strftime('%Y%m%d-%H%M%S')}")
    from device.capture.sink import ensure_writable_dir

    ensure_writable_dir(out, "output dir")
    try:
        j, c = write_check(out, check)
    except FileExistsError:
        raise InputError(f"{out} already holds defects.json or defects.csv; choose another --out") from None
    counts = check["meta"]["counts"]
    as_json = args.json or not sys.stdout.isatty()
    if as_json:
        print(json.dumps({"json": str(j), "csv": str(c), **check["meta"]}), flush=True)
    else:
        pixels = {k: v for k, v in counts.items() if k not in ("column", "row")}
        lines = f", {counts.get('column', 0)} column and {counts.get('row', 0)} row defect(s)"
        print(f"{sum(pixels.values())} defective pixel(s): " +
              ", ".join(f"{v} {k}" for k, v in pixels.items()) + f"{lines}; written to {j} and {c}", flush=True)
    return 0


def _cmd_report(args, cfg) -> int:
    from device.common.roi import parse_roi
    from device.config import ConfigError
    from device.defects.persistence import DefectMap, load_detector
    from device.defects.video_report import scan_video, write_report

    if not args.inputs:
        raise InputError("--report needs a VIDEO to scan")
    try:
        roi = parse_roi(args.roi) if args.roi else None
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    out_root = Path(args.report)
    detector = load_detector(cfg)
    status = 0
    as_json = args.json or not sys.stdout.isatty()
    for i, path in enumerate(args.inputs):
        out = out_root if len(args.inputs) == 1 else out_root / f"{i:02d}-{Path(path).stem}"
        try:
            summary = scan_video(path, roi=roi, defect_map=DefectMap.from_config(cfg.defects), detector=detector,
                                 progress=not args.no_progress and sys.stderr.isatty())
            md = write_report(summary, out)
        except InputError as exc:
            print_error("focus-assist", exc)
            status = 2
            continue
        line = {"path": path, "report": str(md), "frames": summary["frames"],
                "truncated": summary["truncated"], "persistent": len(summary["persistent"]),
                "transient_frames": len(summary["transients"])}
        if summary["truncated"]:
            print(f"focus-assist: warning: {path} is truncated: read {summary['frames']} of "
                  f"{summary['expected_frames']} frames", file=sys.stderr, flush=True)
        if as_json:
            print(json.dumps(line), flush=True)
        else:
            print(f"{path}: {line['frames']} frames, {line['persistent']} persistent defect(s), "
                  f"{line['transient_frames']} frame(s) with transient errors; report: {md}", flush=True)
    return status
