"""``focus-assist``: run the live loop, score images, find the peak of a focus sweep.

Every user error (bad file, ROI, source spec or config) is one line on stderr and exit
status 2; a camera that keeps failing exits 1 so that systemd restarts the service.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Optional, Sequence

from device.common.cli_types import positive_int, roi_arg
from device.common.cli_types import print_error
from device.config import AF_MEASURES, AUTOFOCUS_MODES, LOG_LEVELS, MOTOR_DRIVERS
from device.errors import FocusAssistError, SourceError

log = logging.getLogger("focus-assist")

EXIT_OK, EXIT_FAULT, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as argparse does, without the usage dump
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{_dash_hint(message, self.prog)}\n")


def _dash_hint(message: str, prog: str = "focus-assist score") -> str:
    """argparse reads any value that starts with '-' (an ROI at x = -1, a file named -a.jpg)
    as an option; say so, and how to write it."""
    if message.startswith("argument --roi: expected one argument"):
        return " (a value that starts with '-' must be joined to the flag: --roi=-1,0,10,10)"
    if "arguments are required: images" in message:
        return f" (a file name that starts with '-' must follow '--': {prog} -- -name.jpg)"
    return ""


def _add_max_pixels(p) -> None:
    from device.config.inputs import DEFAULT_MAX_IMAGE_PIXELS

    p.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_IMAGE_PIXELS,
                   metavar="N", help="refuse images whose header claims more than N pixels "
                                     f"(default {DEFAULT_MAX_IMAGE_PIXELS:,})")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="focus-assist",
                description="Focus assistant for the Raspberry Pi HQ Camera.")
    p.add_argument("--log-level", default=None, choices=LOG_LEVELS)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run the live loop on a camera, video, images or the simulator")
    r.add_argument("--source", help="auto (default), sim[:key=value,...], video:PATH, "
                                    "images:GLOB or picamera2")
    r.add_argument("--frames", type=positive_int, help="stop after N frames")
    r.add_argument("--headless", action="store_true", help="no on-screen preview")
    r.add_argument("--roi", type=roi_arg, help="region of interest X,Y,W,H in frame pixels")
    r.add_argument("--seed", type=int, help="seed of the simulated camera")
    r.add_argument("--config", help="TOML config file")
    r.add_argument("--log-jsonl", help="write one JSON object per frame to this file")
    r.add_argument("--stats", action="store_true",
                   help="print a JSON summary as the last stdout line")
    r.add_argument("--model", metavar="FILE",
                   help="focus model (default: models/focus.tflite or [models] focus)")
    r.add_argument("--web", metavar="HOST:PORT",
                   help="serve the web viewfinder (e.g. 127.0.0.1:8000; other hosts need a token)")
    r.add_argument("--web-token", metavar="TOKEN",
                   help="token the web viewfinder requires (or $FOCUS_ASSIST_WEB_TOKEN)")
    r.add_argument("--no-peaking", action="store_true", help="start with focus peaking off")
    r.add_argument("--heatmap", action="store_true", help="start with the tile heat map on")
    r.add_argument("--zoom", action="store_true", help="start with the zoom-to-focus inset on")
    r.add_argument("--no-hud", action="store_true", help="start with the HUD off")
    r.add_argument("--preview", choices=["overlay", "post_callback", "none"],
                   help="how the Pi's display shows the overlay (default: overlay)")
    r.add_argument("--capture-when-sharp", action="store_true",
                   help="save a still each time the subject (or --roi) passes through focus")
    r.add_argument("--capture-dir", help="folder for captures (default: <state dir>/captures)")
    r.add_argument("--motor", choices=MOTOR_DRIVERS,
                   help="drive the focus motor ([motor] config; sim moves --source sim's lens)")
    r.add_argument("--autofocus", nargs="?", const="once", choices=AUTOFOCUS_MODES,
                   help="autofocus once at start (the default) or continuously")
    r.add_argument("--bracket", type=positive_int, metavar="N",
                   help="focus bracket: N captures centred on focus, then exit (needs --motor)")
    r.add_argument("--bracket-step", type=positive_int, metavar="STEPS",
                   help="motor steps between bracket frames (default: from the focus curve)")
    r.add_argument("--bracket-from", choices=["focus", "here"],
                   help="autofocus first (default) or centre the bracket where the lens is")
    r.add_argument("--measure", choices=AF_MEASURES,
                   help="what the autofocus optimises: focus (contrast) or star size hfr|fwhm")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("score", help="score images: focus measures (and the CNN's verdict)")
    s.add_argument("--json", action="store_true", help="JSON lines (the default when piped)")
    s.add_argument("--roi", type=roi_arg)
    s.add_argument("--model", metavar="FILE",
                   help="focus model (default: models/focus.tflite, shipped with the package)")
    _add_max_pixels(s)
    s.add_argument("images", nargs="+", help="image files; - or /dev/stdin reads a piped image")
    s.set_defaults(func=cmd_score)

    w = sub.add_parser("sweep", help="find the sharpest frame of a focus sweep")
    w.add_argument("--json", action="store_true")
    w.add_argument("--roi", type=roi_arg)
    _add_max_pixels(w)
    w.add_argument("--measure", choices=AF_MEASURES, default="focus",
                   help="focus (contrast, the default) or star size hfr|fwhm (a V-curve fit)")
    w.add_argument("images", nargs="+", help="the sweep's images, in lens order")
    w.set_defaults(func=cmd_sweep)

    for register in _extension_parsers():
        register(sub)
    return p


def _extension_parsers():
    """Subcommands that live with their feature."""
    from device.defects import cli as defects_cli
    from device.lens.motor import cli as motor_cli
    from device.optics import cli as optics_cli
    from device.scoring import stars_cli

    return [defects_cli.add_parser, motor_cli.add_parser, optics_cli.add_parser, stars_cli.add_parser]


# --- run ---------------------------------------------------------------------------

def run_overrides(args) -> dict:
    """CLI flags of ``run`` as a nested config dict (they win over the file)."""
    over: dict = {}
    if args.source is not None:     # '' reaches the config check, not the default
        over.setdefault("source", {})["spec"] = args.source
    if args.roi:
        over.setdefault("scoring", {})["roi"] = list(args.roi)
    if args.seed is not None:
        over.setdefault("sim", {})["seed"] = args.seed
    if args.log_jsonl:
        over.setdefault("log", {})["jsonl"] = args.log_jsonl
    if args.model:
        over.setdefault("models", {})["focus"] = args.model
    if args.web:
        over.setdefault("web", {})["listen"] = args.web
    if args.web_token:
        over.setdefault("web", {})["token"] = args.web_token
    for flag, key, value in (("no_peaking", "peaking", False), ("heatmap", "heatmap", True),
                             ("zoom", "zoom", True), ("no_hud", "hud", False)):
        if getattr(args, flag):
            over.setdefault("overlay", {})[key] = value
    if args.preview:
        over.setdefault("overlay", {})["preview"] = args.preview
    if args.capture_when_sharp:
        over.setdefault("capture", {})["enabled"] = True
    if args.capture_dir is not None:     # '' reaches the config check, not the default
        over.setdefault("capture", {})["dir"] = args.capture_dir
    if args.motor:
        over.setdefault("motor", {}).update(enabled=True, driver=args.motor)
    if args.autofocus:
        over.setdefault("motor", {})["enabled"] = True
        over.setdefault("autofocus", {}).update(enabled=True, mode=args.autofocus)
    if args.log_level:
        over.setdefault("log", {})["level"] = args.log_level
    for flag, key in (("bracket", "frames"), ("bracket_step", "step"), ("bracket_from", "start")):
        if getattr(args, flag, None) is not None:
            over.setdefault("bracket", {})[key] = getattr(args, flag)
    if args.measure:
        over.setdefault("autofocus", {})["measure"] = args.measure
    return over


def cmd_run(args) -> int:
    from device.app.runner import RunOptions, Runner
    from device.common.malloc import tune_malloc

    tune_malloc()      # before the run's threads exist (docs/performance.md)
    opts = RunOptions(config_path=args.config, overrides=run_overrides(args), frames=args.frames,
                      stats=args.stats, headless=args.headless)
    return Runner(opts).run()


# --- score / sweep -------------------------------------------------------------------

def _wants_json(args) -> bool:
    return args.json or not sys.stdout.isatty()


def _load_grey(path: str, max_pixels: int):
    from device.common.preprocess import to_grey
    from device.sources.files import read_image

    img = read_image(path, max_pixels)
    return img, to_grey(img)


def cmd_score(args) -> int:
    from device.common.roi import check_roi
    from device.scoring.measures import score_frame

    cnn = _cnn_scorer(getattr(args, "model", None))
    status = EXIT_OK
    for path in args.images:
        try:
            img, grey = _load_grey(path, args.max_pixels)
            roi = check_roi(args.roi, grey.shape)
            m = score_frame(grey, roi)
            out = {"path": path, "width": int(grey.shape[1]), "height": int(grey.shape[0]),
                   "focus": round(m.focus, 4), "measures": {k: round(v, 4) for k, v in m.measures.items()},
                   "roi": list(roi) if roi else None}
            if cnn is not None:
                out.update(cnn(img, grey, roi))
        except FocusAssistError as exc:
            _error(_naming(path, exc))
            status = EXIT_USAGE
            continue
        if _wants_json(args):
            print(json.dumps(out), flush=True)
        else:
            extra = f"  {out['label']} p(sharp)={out['sharp_prob']:.2f}" if "label" in out else ""
            print(f"{path}: focus {out['focus']:.1f}{extra}", flush=True)
    return status


def _cnn_scorer(model_path=None):
    """The CNN's per-image verdict (None when the focus net is disabled in the config)."""
    from device.scoring.focus_net import image_verdict_fn

    return image_verdict_fn(model_path=model_path)


def cmd_sweep(args) -> int:
    import numpy as np

    from device.common.roi import check_roi
    from device.scoring.measures import focus_value, refine_peak

    if args.measure != "focus":
        from device.scoring.stars_cli import star_sweep

        return star_sweep(args)
    status, paths, curve, where = EXIT_OK, [], [], []
    for i, path in enumerate(args.images):
        try:
            _, grey = _load_grey(path, args.max_pixels)
            # Native scale: stills of one sweep are ranked, not compared across resolutions.
            curve.append(focus_value(grey, check_roi(args.roi, grey.shape), native=True))
            paths.append(path)
            where.append(i)
        except FocusAssistError as exc:
            _error(_naming(path, exc))
            status = EXIT_USAGE
    if not curve:
        # Each image already had its line; a summary would only repeat (or misstate) them.
        return EXIT_USAGE
    best, refined = refine_peak(curve)
    # Indices count the arguments, skipped images included; the refined peak interpolates
    # between the argument positions of its scored neighbours.
    refined_arg = float(np.interp(refined, range(len(where)), where))
    out = {"best_index": where[best], "best_path": paths[best], "refined_index": round(refined_arg, 3),
           "curve": [round(c, 4) for c in curve], "paths": paths, "indices": where,
           "roi": list(args.roi) if args.roi else None}
    if _wants_json(args):
        print(json.dumps(out), flush=True)
    else:
        print(f"sharpest: {paths[best]} (index {where[best]}, refined {refined_arg:.2f})")
    return status


# --- entry point ---------------------------------------------------------------------

def _naming(path: str, exc: BaseException) -> str:
    """A batch's error line names its file (an ROI or size error alone does not say which)."""
    text = str(exc)
    return text if text.startswith(path) else f"{path}: {text}"


def _error(exc: BaseException) -> None:
    print_error("focus-assist", exc)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from device.service.logs import setup_logging

    # One-shot commands stay quiet unless asked: their stderr is for errors.
    setup_logging(args.log_level or ("info" if args.command == "run" else "warning"))
    try:
        return args.func(args)
    except SourceError as exc:
        _error(exc)
        return EXIT_FAULT
    except FocusAssistError as exc:
        _error(exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
