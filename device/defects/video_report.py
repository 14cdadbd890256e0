"""Video quality check: ``focus-assist defects VIDEO --report DIR``.

One pass over the file, every frame in order: the noise-robust focus value (whole
frame or ROI), the persistent defect map (``device.defects.persistence.DefectMap``: what stays on
one pixel while the scene changes), and strong single-frame pixel errors. Errors that
are not on a persistent defect are *transient* (a decoding or transmission glitch, the
seed's original use) and are listed with their frame and timestamp.

The report folder gets ``report.md``, ``focus_curve.png``, ``defects.json`` (everything,
machine-readable), ``transients.csv`` and ``defects.png`` (the last frame with the
persistent defects circled). Every file is written atomically; an existing report is
never overwritten. A truncated file is reported up to where it ends, and the report says
so. The plot uses matplotlib when it is installed and a plain OpenCV drawing otherwise.
"""
from __future__ import annotations

import csv
import io
import logging
import sys
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from device.common.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from device.defects.candidates import CODES, frame_candidates
from device.defects.persistence import DefectMap, add_frame
from device.errors import InputError
from device.common.roi import check_roi
from device.sources.files import VideoFile
from device.scoring.measures import focus_value
from device.common.preprocess import to_grey

log = logging.getLogger(__name__)

# A transient error must stand far out of its ring: texture rarely does by this much.
TRANSIENT_THRESHOLD = 88.0
MAX_PER_FRAME = 20      # more than this in one frame is a broken frame, stored as a count


def _progress(total: Optional[int], enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total or None, unit="frame", desc="scanning", file=sys.stderr,
                dynamic_ncols=True, leave=False)


def scan_video(path: str, *, roi=None, defect_map: Optional[DefectMap] = None, detector=None,
               progress: bool = True, max_frames: Optional[int] = None) -> dict:
    """Scan a video file; returns everything the report needs (no files written)."""
    with VideoFile(path) as video:
        fps, expected = video.fps, video.frame_count
        dmap = defect_map or DefectMap()
        focus, times, transients = [], [], []
        last = None
        bar = _progress(expected if expected > 0 else None, progress)
        t0 = time.perf_counter()
        i = 0
        for index, t, bgr in video:
            if max_frames is not None and index >= max_frames:
                break
            grey = to_grey(bgr)
            if index == 0:
                roi = check_roi(roi, grey.shape)
            times.append(t)
            focus.append(focus_value(grey, roi))
            add_frame(dmap, bgr, detector)
            ys, xs, codes, strength, values = frame_candidates(bgr, TRANSIENT_THRESHOLD, dmap.spread_gain)
            if len(ys):
                items = [{"x": int(x), "y": int(y), "channel": CODES[c], "strength": round(float(s), 2),
                          "value": int(v)}
                         for y, x, c, s, v in zip(ys[:MAX_PER_FRAME], xs[:MAX_PER_FRAME], codes[:MAX_PER_FRAME],
                                                  strength[:MAX_PER_FRAME], values[:MAX_PER_FRAME])]
                transients.append({"frame": index, "time_s": round(t, 3), "count": int(len(ys)),
                                   "errors": items})
            last = bgr
            i = index + 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    persistent, undecided = dmap.report()
    # A frame's outliers on a persistent defect are that defect, not a transient error.
    kept = []
    for t in transients:
        errs = [e for e in t["errors"]
                if not any(abs(e["x"] - d["x"]) <= 2 and abs(e["y"] - d["y"]) <= 2 for d in persistent)]
        n_on = len(t["errors"]) - len(errs)
        count = t["count"] - n_on
        if count > 0:
            kept.append({**t, "count": count, "errors": errs})
    truncated = max_frames is None and expected > 0 and i < expected
    f = np.asarray(focus)
    best = int(np.argmax(f))
    return {
        "path": str(path), "frames": i, "expected_frames": expected if expected > 0 else None,
        "truncated": bool(truncated), "fps": fps, "roi": list(roi) if roi else None,
        "width": int(last.shape[1]), "height": int(last.shape[0]),
        "duration_s": round(times[-1], 3) if times else 0.0,
        "scan_s": round(time.perf_counter() - t0, 2),
        "focus": {"values": [round(float(v), 4) for v in f], "times": [round(t, 3) for t in times],
                  "best_frame": best, "best_time_s": round(times[best], 3),
                  "min": round(float(f.min()), 4), "median": round(float(np.median(f)), 4),
                  "max": round(float(f.max()), 4)},
        "persistent": persistent,
        "undecided": undecided,
        "transients": kept,
        "map": {"detector": "net" if detector is not None else "classic", "min_hits": dmap.min_hits, "scene_change": dmap.scene_change, "threshold": dmap.threshold,
                "transient_threshold": TRANSIENT_THRESHOLD},
        "_last_frame": last,
    }


def plot_focus(times, values, best: int, truncated: bool) -> bytes:
    """PNG bytes of the focus curve: matplotlib if present, else an OpenCV drawing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _plot_cv(times, values, best)
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    ax.plot(times, values, lw=1.2, color="#1f77b4")
    ax.axvline(times[best], color="#d62728", lw=0.8, ls="--", label=f"sharpest: frame {best}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("focus (normalised Tenengrad)")
    ax.set_title("focus per frame" + (" (video truncated)" if truncated else ""))
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _plot_cv(times, values, best: int) -> bytes:
    w, h, m = 900, 320, 40
    img = np.full((h, w, 3), 255, np.uint8)
    t = np.asarray(times, float)
    v = np.asarray(values, float)
    tx = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    vy = (v - v.min()) / max(v.max() - v.min(), 1e-9)
    pts = np.stack([m + tx * (w - 2 * m), h - m - vy * (h - 2 * m)], 1).astype(np.int32)
    cv2.rectangle(img, (m, m), (w - m, h - m), (200, 200, 200), 1)
    cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, (180, 119, 31), 2, cv2.LINE_AA)
    cv2.line(img, (int(pts[best, 0]), m), (int(pts[best, 0]), h - m), (40, 39, 214), 1)
    cv2.putText(img, "focus per frame (OpenCV plot: matplotlib not installed)", (m, 25),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", img)
    return buf.tobytes()


def _markdown(s: dict) -> str:
    f = s["focus"]
    lines = [f"# Video quality report: `{Path(s['path']).name}`", ""]
    if s["truncated"]:
        lines += [f"> **The video is truncated**: it ends after frame {s['frames'] - 1} "
                  f"(t = {s['duration_s']:.2f} s) although its header announces "
                  f"{s['expected_frames']} frames. Everything below covers the readable part only.", ""]
    lines += [
        f"- frames scanned: {s['frames']}" + (f" of {s['expected_frames']}" if s["expected_frames"] else ""),
        f"- size: {s['width']}x{s['height']}, {s['fps']:.2f} fps, {s['duration_s']:.2f} s",
        f"- focus ROI: {s['roi'] if s['roi'] else 'whole frame'}",
        f"- scan time: {s['scan_s']:.1f} s", "",
        "## Focus", "",
        f"Sharpest frame: **{f['best_frame']}** at {f['best_time_s']:.2f} s "
        f"(focus {f['max']:.4g}; median {f['median']:.4g}, min {f['min']:.4g}).", "",
        "![focus per frame](focus_curve.png)", "",
        "## Persistent pixel defects", "",
        f"Pixels that stood out from their neighbourhood in the same colour channel in at least "
        f"{s['map']['min_hits']} frames while the scene around them changed.", "",
    ]
    if s["persistent"]:
        lines += ["| x | y | kind | confidence | frames |", "|---|---|---|---|---|"]
        lines += [f"| {d['x']} | {d['y']} | {d['kind']} | {d['confidence']:.2f} | {d['hits']} |"
                  for d in s["persistent"]]
        lines += ["", "![persistent defects](defects.png)"]
    else:
        lines += ["None found."]
    if s.get("undecided"):
        lines += ["", f"**Undecided: {len(s['undecided'])} point(s)** stayed on their pixel while the "
                  "scene around them did not change, so a defect cannot be told from a bright point "
                  "of the scene there (`defects.json`, `undecided`). The lens-capped check "
                  "(`focus-assist defects --dark 16`) settles them."]
    lines += ["", "## Transient pixel errors", "",
              "Single-frame pixel errors (far outside their neighbourhood, not on a persistent "
              "defect), e.g. decoding or transmission glitches. Full list: `transients.csv`.", ""]
    if s["transients"]:
        lines += ["| frame | time (s) | errors | first positions (x, y) |", "|---|---|---|---|"]
        for t in s["transients"][:200]:
            pos = ", ".join(f"({e['x']}, {e['y']})" for e in t["errors"][:5])
            lines.append(f"| {t['frame']} | {t['time_s']:.3f} | {t['count']} | {pos} |")
        if len(s["transients"]) > 200:
            lines.append(f"| ... | | | {len(s['transients']) - 200} more frames in transients.csv |")
    else:
        lines += ["None found."]
    return "\n".join(lines) + "\n"


def write_report(summary: dict, out_dir: str | Path) -> Path:
    """Write the report files; InputError if ``out_dir`` already holds a report."""
    from device.capture.sink import ensure_writable_dir

    out = ensure_writable_dir(out_dir, "report dir")
    if (out / "report.md").exists():
        raise InputError(f"report dir {out} already holds a report.md; choose another --report folder")
    s = {k: v for k, v in summary.items() if not k.startswith("_")}
    f = s["focus"]
    atomic_write_bytes(out / "focus_curve.png", plot_focus(f["times"], f["values"], f["best_frame"],
                                                           s["truncated"]), overwrite=True)
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(["frame", "time_s", "x", "y", "channel", "strength", "value"])
    for t in s["transients"]:
        for e in t["errors"]:
            wr.writerow([t["frame"], t["time_s"], e["x"], e["y"], e["channel"], e["strength"], e["value"]])
    atomic_write_bytes(out / "transients.csv", buf.getvalue().encode(), overwrite=True)
    last = summary.get("_last_frame")
    if last is not None:
        img = last.copy()
        for d in s["persistent"]:
            cv2.circle(img, (d["x"], d["y"]), 8, (0, 0, 255), 1, cv2.LINE_AA)
        ok, png = cv2.imencode(".png", img)
        if ok:
            atomic_write_bytes(out / "defects.png", png.tobytes(), overwrite=True)
    atomic_write_json(out / "defects.json", s, overwrite=True)
    # report.md last: its presence means the report is complete (the files above may be
    # replaced: without report.md they are the remains of an unfinished run).
    return atomic_write_text(out / "report.md", _markdown(s), overwrite=False)
