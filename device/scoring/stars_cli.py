"""``focus-assist stars [--json] [--roi X,Y,W,H] [--stars-csv FILE] IMAGE...`` and the
star-size curve of ``focus-assist sweep --measure hfr|fwhm``.

``stars`` prints per image ``{"path", "width", "height", "stars", "hfr_px", "fwhm_px",
"saturated", "background", "noise", "status"}`` (sizes null when no star was found);
``--stars-csv`` writes every accepted star of every image, atomically. An unreadable
image is one line on stderr and exit status 2; a frame without stars is a result
(``"status": "no stars found"``), not an error.
"""
from __future__ import annotations

import csv
import io
import math
import sys

from device.common.cli_types import print_error, roi_arg
from device.common.roi import check_roi
from device.errors import FocusAssistError, InputError

EXIT_OK, EXIT_USAGE = 0, 2
CSV_FIELDS = ("path", "x", "y", "flux", "peak", "hfr", "fwhm", "saturated")


def add_parser(sub) -> None:
    s = sub.add_parser("stars", help="detect stars and measure their size (HFR, FWHM)")
    s.add_argument("--json", action="store_true", help="JSON lines (the default when piped)")
    s.add_argument("--roi", type=roi_arg, help="region of interest X,Y,W,H in image pixels")
    s.add_argument("--stars-csv", metavar="FILE", help="write every star found to this CSV")
    s.add_argument("--config", help="TOML config file (its [stars] section)")
    s.add_argument("images", nargs="+")
    s.set_defaults(func=cmd_stars)


def _r(v: float, nd: int = 3):
    return round(v, nd) if math.isfinite(v) else None


def field_json(path: str, field) -> dict:
    return {"path": path, "width": field.width, "height": field.height, "stars": field.count,
            "hfr_px": _r(field.hfr), "fwhm_px": _r(field.fwhm), "saturated": field.saturated,
            "background": _r(field.background, 2), "noise": _r(field.noise, 3),
            "status": field.status}


def _measure_file(path: str, roi, cfg):
    from device.scoring.stars import measure_stars
    from device.sources.files import read_image

    img = read_image(path)
    return measure_stars(img, check_roi(roi, img.shape), cfg)


def _fields(paths, roi, cfg, failed: list):
    """(path, StarField) for each readable image; an unreadable one is one line on stderr
    and is appended to ``failed``."""
    for path in paths:
        try:
            yield path, _measure_file(path, roi, cfg)
        except FocusAssistError as exc:
            print_error("focus-assist", exc)
            failed.append(path)


def cmd_stars(args) -> int:
    from device.common.atomic import atomic_write_text
    from device.config import load_config

    cfg = load_config(args.config).stars
    as_json = args.json or not sys.stdout.isatty()
    rows, failed = [], []
    for path, field in _fields(args.images, args.roi, cfg, failed):
        out = field_json(path, field)
        rows.extend((path, round(s.x, 2), round(s.y, 2), round(s.flux, 1), round(s.peak, 2),
                     round(s.hfr, 3), round(s.fwhm, 3), int(s.saturated)) for s in field.stars)
        if as_json:
            import json

            print(json.dumps(out), flush=True)
        elif field.status == "ok":
            print(f"{path}: {field.count} stars, HFR {field.hfr:.2f} px, FWHM {field.fwhm:.2f} px"
                  + (f", {field.saturated} saturated" if field.saturated else ""), flush=True)
        else:
            print(f"{path}: {field.status}", flush=True)
    if args.stars_csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_FIELDS)
        w.writerows(rows)
        try:
            atomic_write_text(args.stars_csv, buf.getvalue())
        except OSError as exc:
            raise InputError(f"cannot write {args.stars_csv}: {exc.strerror}") from None
    return EXIT_USAGE if failed else EXIT_OK


def star_sweep(args) -> int:
    """``sweep --measure hfr|fwhm``: the star-size curve and its V-curve (hyperbola) fit."""
    from device.config import load_config
    from device.lens.vcurve import fit_vcurve

    cfg = load_config(getattr(args, "config", None)).stars
    paths, curve, counts, failed = [], [], [], []
    for path, field in _fields(args.images, args.roi, cfg, failed):
        paths.append(path)
        curve.append(field.size(args.measure) if field.count >= cfg.min_stars else math.nan)
        counts.append(field.count)
    if not paths:
        raise InputError("sweep: no readable images")
    finite = [i for i, v in enumerate(curve) if math.isfinite(v)]
    if not finite:
        raise InputError("sweep: no stars found in any image")
    fit = fit_vcurve(range(len(curve)), curve, cfg.min_r2)
    smallest = min(finite, key=lambda i: curve[i])
    best = min(max(round(fit.vertex), 0), len(curve) - 1) if fit.ok else smallest
    out = {"measure": args.measure, "best_index": best, "best_path": paths[best],
           "refined_index": round(fit.vertex, 3) if fit.ok else float(best),
           "curve": [_r(v) for v in curve], "stars": counts, "paths": paths,
           "roi": list(args.roi) if args.roi else None, "fit": fit.to_json()}
    if args.json or not sys.stdout.isatty():
        from device.common.jsonio import dumps

        print(dumps(out), flush=True)
    else:
        how = f"V-curve R^2 {fit.r2:.2f}" if fit.ok else f"smallest stars; no V-curve ({fit.reason})"
        print(f"sharpest: {paths[best]} (index {best}, {how})")
    return EXIT_USAGE if failed else EXIT_OK
