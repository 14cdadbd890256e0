"""``focus-assist defects [--json] [--sequence] [--model FILE] IMAGE_OR_VIDEO...``.

Without ``--sequence``: one JSON object per image, or per frame of a video,
``{"path", "frame"?, "defects": [{"x", "y", "kind", "confidence"}, ...]}``.
With ``--sequence``: every input is a frame of one camera; one object for the whole
sequence with only the defects that stayed put while the scene changed.
Coordinates are the input image's pixels.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .errors import InputError

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
    d.add_argument("inputs", nargs="+", metavar="IMAGE_OR_VIDEO")
    d.set_defaults(func=cmd_defects)


def iter_frames(path: str) -> Iterator[tuple[Optional[int], np.ndarray]]:
    """(frame index or None for a still, BGR image) for an image or every frame of a video."""
    from .preprocess import to_bgr
    from .sources.files import read_image

    if Path(path).suffix.lower() not in VIDEO_EXTS:
        yield None, to_bgr(read_image(path))
        return
    import cv2

    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise InputError(f"{path}: cannot be opened as a video")
        i = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            yield i, to_bgr(img)
            i += 1
        if i == 0:
            raise InputError(f"{path}: video has no readable frames")
    finally:
        cap.release()


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
    from .config import load_config
    from .defects import DefectDetector, DefectSequence

    cfg = load_config(getattr(args, "config", None))
    det = DefectDetector.from_config(cfg, args.model)
    as_json = args.json or not sys.stdout.isatty()
    if args.sequence:
        seq = DefectSequence(det, min_scene_changes=cfg.defects.min_scene_changes)
        for path in args.inputs:
            for _, img in iter_frames(path):
                seq.update(img)     # a bad frame ends the run: a sequence with holes is no sequence
        _print({"paths": list(args.inputs), "frames": seq.frames, "defects": seq.persistent()},
               as_json)
        return 0
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
            print(f"focus-assist: error: {exc}", file=sys.stderr, flush=True)
            status = 2
    return status

