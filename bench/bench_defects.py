"""Pixel defects injected into real photographs: recall and false defects per megapixel.

    python bench/bench_defects.py [--sequences 6] [--images 6] [--only PART] [--json OUT]

Targets (issue 7), defects injected into photosites of an RGGB Bayer mosaic of real
photographs (``../shared/data``: the Kaggle sharp shots and the PCB sweep, never seen
while choosing the rule's settings, which were tuned on scikit-image photos), then
demosaiced (bilinear, edge-aware or VNG, drawn per sequence) with OpenCV:

* 14-frame sequence (the camera pans, the defects stay on their photosites):
  recall >= 0.98, <= 1 false defect per megapixel, 0 on clean sequences;
* single frames at JPEG q90: recall >= 0.9 at <= 3 false defects per megapixel;
* a fixed camera during a real focus sweep (issue 15: ``--only sweep``; the two
  ``focus_sweeps`` and the PCB sweep, defects set in the mosaic of each frame, stored as
  PNG): recall >= 0.95, <= 1 false defect per megapixel, 0 on the same sweep without defects.

A defect counts for recall when its photosite differs from the scene there by at least
60 levels (``train.degrade.MIN_DEFECT_CONTRAST``) in at least half of the frames (in a
sequence) or in its frame: an invisible defect cannot be found by anything. A detection
within 2.5 px of a defect finds it; any other detection is false.

Methods: ``classic`` (``device.defects.persistence``: ring-extremes candidates + persistence over
scene changes) and, when ``models/defects.tflite`` loads, ``net`` (``device.defects.net``:
DefectDetector per frame, which scores the ring rule's candidates with the net and the
local texture, fed to the same persistence map at the sequence's lower per-frame bar). Single frames also get recall per kind
(dead, hot, stuck: the same detections matched against that kind's defects alone). The Bayer injection, mosaic,
demosaic and JPEG helpers are the training engineer's ``train/degrade.py`` (desktop code,
used here only to make test data).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from device.defects.persistence import DefectMap, add_frame  # noqa: E402

from device.defects.candidates import frame_candidates  # noqa: E402

from device.defects.sensor_check import match  # noqa: E402
from train import degrade  # noqa: E402
from tune_defects import best_bar, nearest_truth  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
W, H = 1000, 750          # 0.75 MP frames
N_FRAMES = 14
KINDS = ("dead", "hot", "stuck")


def photos() -> list:
    paths = sorted((SHARED / "kaggle_blur_samples").glob("*_S.*")) + \
        [SHARED / "pcb_focus_sweep" / f"pcb_{i:03d}.JPG" for i in (3, 6)]
    out = []
    for p in paths:
        img = cv2.imread(str(p))
        if img is None:
            continue
        s = 1300 / max(img.shape[:2])     # room to pan a 1000x750 frame around
        out.append(cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA))
    if not out:
        sys.exit(f"no photographs in {SHARED}: the bench needs ../shared/data beside the checkout")
    return out


def make_sequence(rng, big, n_defects=60, inject=True, jpeg=0):
    ys = rng.integers(4, H - 4, n_defects)
    xs = rng.integers(4, W - 4, n_defects)
    keep = [0]
    for i in range(1, n_defects):   # apart, so each defect is one detection
        if all(max(abs(ys[i] - ys[j]), abs(xs[i] - xs[j])) > 6 for j in keep):
            keep.append(i)
    ys, xs = ys[keep], xs[keep]
    kinds = rng.integers(0, 3, len(ys))
    vals = np.where(kinds == 0, rng.integers(0, 12, len(ys)),
                    np.where(kinds == 1, rng.integers(235, 256, len(ys)), rng.integers(70, 200, len(ys))))
    method = int(rng.integers(3))
    frames, visible = [], np.zeros(len(ys), int)
    for _ in range(N_FRAMES):
        oy, ox = rng.integers(0, big.shape[0] - H + 1), rng.integers(0, big.shape[1] - W + 1)
        bayer = degrade.mosaic(big[oy:oy + H, ox:ox + W]).copy()
        if inject:
            visible += np.abs(bayer[ys, xs].astype(int) - vals) >= degrade.MIN_DEFECT_CONTRAST
            bayer[ys, xs] = vals
        f = degrade.demosaic(bayer, method)
        frames.append(degrade.jpeg(f, jpeg) if jpeg else f)
    truth = [(float(y), float(x)) for y, x, v in zip(ys, xs, visible) if v >= N_FRAMES // 2]
    every = [(float(y), float(x)) for y, x in zip(ys, xs)]
    return frames, truth, every


def net_detector(model: str | None = None):
    try:
        from device.config import load_config
        from device.defects.net import DefectDetector

        return DefectDetector.from_config(load_config(), model)
    except Exception as exc:   # no model, no runtime: report the classic rule alone
        print(f"(defect net unavailable: {exc})", file=sys.stderr)
        return None


def sequence_detector(det):
    """The net as ``defects --sequence --model`` and the video report use it: the
    sequence's per-frame bar, the full tile budget."""
    from device.defects.net import SEQUENCE_OPTIONS, DefectDetector

    return DefectDetector(det.model, det.meta, SEQUENCE_OPTIONS)


def run_sequences(n_seq: int, jpeg: int, det) -> dict:
    seq_det = sequence_detector(det) if det is not None else None
    rng = np.random.default_rng(2026)
    bigs = photos()
    res = {m: {"found": 0, "truth": 0, "false": 0, "clean_false": 0, "s_per_frame": 0.0}
           for m in (["classic"] + (["net"] if det is not None else []))}
    mp = 0.0
    for k in range(n_seq):
        big = bigs[k % len(bigs)]
        frames, truth, every = make_sequence(rng, big, jpeg=jpeg)
        clean, _, _ = make_sequence(rng, big, inject=False, jpeg=jpeg)
        mp += W * H / 1e6
        for m, r in res.items():
            for seq, is_clean in ((frames, False), (clean, True)):
                t = time.perf_counter()
                if m == "classic":
                    dm = DefectMap()
                    for f in seq:
                        dm.add(f)
                    found = dm.confirmed()
                else:
                    dm = DefectMap()
                    for f in seq:
                        add_frame(dm, f, seq_det)
                    found = dm.confirmed()
                r["s_per_frame"] += (time.perf_counter() - t) / len(seq)
                if is_clean:
                    r["clean_false"] += len(found)
                else:
                    hits, _ = match(found, truth)
                    _, false = match(found, every)     # a hit on a faint defect is not false
                    r["found"] += hits
                    r["truth"] += len(truth)
                    r["false"] += false
    out = {}
    for m, r in res.items():
        out[m] = {"recall": round(r["found"] / max(r["truth"], 1), 4),
                  "false_per_mp": round(r["false"] / mp, 3),
                  "clean_false_per_mp": round(r["clean_false"] / mp, 3),
                  "defects": r["truth"], "megapixels": round(mp, 2),
                  "ms_per_frame": round(1000 * r["s_per_frame"] / (2 * n_seq), 1)}
    return out


SWEEPS = (("pi_board_macro", SHARED / "focus_sweeps" / "pi_board_macro", "*.jpg", 540),
          ("usb_dongle_macro", SHARED / "focus_sweeps" / "usb_dongle_macro", "*.jpg", 540),
          ("pcb_focus_sweep", SHARED / "pcb_focus_sweep", "*.JPG", None))
SWEEP_FRAMES = 14
SWEEP_DEFECTS = 200


def run_sweeps(det, n_frames: int = SWEEP_FRAMES, population: bool = False) -> dict:
    """A fixed camera during a real focus sweep: ``n_frames`` spread over each sweep
    (all 10 of the PCB sweep), ``SWEEP_DEFECTS`` defective photosites set in the mosaic
    of every frame (``tests.device.bayer_defects``), demosaiced and stored as PNG; and the
    same frames without defects. Recall counts defects visible in half of the frames.
    ``population``: the defects follow real sensors' statistics (``sensor_population``)."""
    from tests.device.bayer_defects import (KIND_LEVELS, evenly_spaced, fixed_camera_frames,
                                            random_sites, sensor_population)

    seq_det = sequence_detector(det) if det is not None else None
    methods = {"classic": None, **({"net": seq_det} if det is not None else {})}
    out = {}
    for name, folder, pattern, seam in SWEEPS:
        paths = evenly_spaced(sorted(folder.glob(pattern)), n_frames)
        if not paths:
            continue
        images = [cv2.imread(str(p)) for p in paths]
        h, w = images[0].shape[:2]
        rng = np.random.default_rng(15)
        if population:
            # Real statistics: singles with a tail of 2-3 photosite clusters (the lines are
            # the dark-frame check's: a column is no point defect). One level per defect.
            defects = [(px, kind, int(rng.integers(*KIND_LEVELS[kind])))
                       for px, kind, _ in sensor_population(rng, (h, w), SWEEP_DEFECTS)[0]]
        else:
            defects = [([(y, x)], kind, level) for y, x, kind, level in random_sites(rng, (h, w), SWEEP_DEFECTS)]
        sites = [(y, x, kind, level) for px, kind, level in defects for y, x in px]
        frames, site_visible = fixed_camera_frames(images, sites)
        clean, _ = fixed_camera_frames(images)
        # A defect is as visible as its most visible photosite; it is found at its centre.
        visible, k = [], 0
        for px, _, _ in defects:
            visible.append(int(max(site_visible[k:k + len(px)])))
            k += len(px)
        centres = [(float(np.mean([p[0] for p in px])), float(np.mean([p[1] for p in px])), kind, 0)
                   for px, kind, _ in defects]
        shown = [c for c, v in zip(centres, visible) if v >= len(frames) / 2]
        every = [(y, x) for y, x, _, _ in centres]
        mp = h * w / 1e6
        for m, d in methods.items():
            t = time.perf_counter()
            dm = DefectMap()
            for f in frames:
                add_frame(dm, f, d)
            found, undecided = dm.report()
            ms = 1000 * (time.perf_counter() - t) / len(frames)
            cm = DefectMap()
            for f in clean:
                add_frame(cm, f, d)
            clean_found = cm.confirmed()
            hits, _ = match(found, [(y, x) for y, x, _, _ in shown])
            _, false = match(found, every)
            r = {"frames": len(frames), "recall": round(hits / max(len(shown), 1), 4),
                 **{f"recall_{k}": round(match(found, [(y, x) for y, x, kd, _ in shown if kd == k])[0]
                                         / max(1, sum(kd == k for *_, kd, _ in shown)), 3) for k in KINDS},
                 "false_per_mp": round(false / mp, 3), "clean_false_per_mp": round(len(clean_found) / mp, 3),
                 "undecided": len(undecided), "clean_undecided": len(cm.undecided()),
                 "defects": len(shown), "megapixels": round(mp, 2), "ms_per_frame": round(ms, 1)}
            if seam is not None:     # the join of the two half-frames: a scene edge, never a defect
                r["false_at_seam"] = sum(abs(d["y"] - seam) <= 3 for d in found + clean_found
                                         if not match([d], every)[0])
            out.setdefault(name, {})[m] = r
    return out


def run_single(n_img: int, det, breakdown: dict | None = None) -> dict:
    """``breakdown``: a dict to fill with one row per defect and the false detections
    (net path), for ``print_breakdown``."""
    rng = np.random.default_rng(7)
    bigs = photos()
    methods = ["classic"] + (["net"] if det is not None else [])
    res = {m: {"found": 0, "false": 0, **{f"found_{k}": 0 for k in KINDS}} for m in methods}
    truth_n = {k: 0 for k in KINDS}
    mp = 0.0
    curve: tuple[list, list] = ([], [])    # the net's (score, defect id or -1) per detection
    for k in range(n_img):
        n_seen = sum(truth_n.values())
        big = bigs[k % len(bigs)]
        oy, ox = rng.integers(0, big.shape[0] - H + 1), rng.integers(0, big.shape[1] - W + 1)
        crop = big[oy:oy + H, ox:ox + W]
        # JPEG'd after injection, as inject_defects(..., jpeg_quality=90) does (same image,
        # same random draws), so each defect's contrast in the mosaic can be read.
        raw, mask, lab = degrade.inject_defects(crop, 60, rng, mode="bayer")
        img = degrade.jpeg(raw, 90)
        mp += W * H / 1e6
        centres = [tuple(c) for c in lab.centres]
        if breakdown is not None:
            rows = _defect_rows(k, crop, raw, img, mask, lab, det)
        for kind in KINDS:
            truth_n[kind] += lab.kinds.count(kind)
        for m in methods:
            if m == "classic":
                ys, xs, _, _, _ = frame_candidates(img)
                found = [{"y": int(y), "x": int(x)} for y, x in zip(ys, xs)]
            else:
                ev = det.evidence(img)
                kept = det.decide(ev, det.score(ev))    # every bar: the whole curve
                found = [{"x": int(ev.xs[i]), "y": int(ev.ys[i])}
                         for i, sc in kept if sc >= det.opts.min_score]
                tid = nearest_truth(ev, np.array(centres, np.float64).reshape(-1, 2))
                curve[0].extend(s for _, s in kept)
                curve[1].extend(int(tid[i]) + n_seen if tid[i] >= 0 else -1 for i, _ in kept)
                if breakdown is not None:
                    sc = det.score(ev)
                    for j, r in enumerate(rows):
                        pts = np.nonzero(tid == j)[0]
                        r["score"] = float(sc[pts].max()) if len(pts) else None
                        r["tiled"] = bool(len(pts))
                    breakdown["defects"].extend(rows)
                    breakdown["false"].extend((k, float(sc[i])) for i, _ in kept if tid[i] < 0)
            hits, false = match(found, centres)
            res[m]["found"] += hits
            res[m]["false"] += false
            for kind in KINDS:     # per kind: the same detections against that kind's defects
                res[m][f"found_{kind}"] += match(found, [c for c, kd in zip(centres, lab.kinds)
                                                         if kd == kind])[0]
    n = sum(truth_n.values())
    out = {m: {"recall": round(r["found"] / max(n, 1), 4), "false_per_mp": round(r["false"] / mp, 2),
               **{f"recall_{k}": round(r[f"found_{k}"] / max(truth_n[k], 1), 3) for k in KINDS},
               "defects": n, "megapixels": round(mp, 2)} for m, r in res.items()}
    if "net" in out:
        # Read off this benchmark's own curve (so not a fixed setting): what the score
        # could reach at the target's budget.
        for budget in (1.0, 3.0):
            rec, fp, bar = best_bar(np.array(curve[0]), np.array(curve[1], np.int64), n, mp, budget)
            out["net"][f"recall_at_{budget:g}_fp_per_mp"] = round(rec, 4)
            out["net"][f"bar_at_{budget:g}_fp_per_mp"] = round(bar, 3)
        if breakdown is not None:
            breakdown["bars"] = {"shipped": det.opts.min_score, "at_3_fp_per_mp": out["net"]["bar_at_3_fp_per_mp"]}
    return out


def _defect_rows(frame: int, crop, raw, img, mask, lab, det) -> list:
    """One row per injected defect: kind, cluster size, contrast in the mosaic (the
    largest change of its photosites), local texture (mean |Laplacian| of the grey JPEG
    frame in 15x15, as the score's texture term) and whether the ring rule proposes it at
    the net path's margin (a candidate within 2.5 px)."""
    from device.defects.net import _texture_at

    ref = degrade.mosaic(crop).astype(int)
    got = degrade.mosaic(raw).astype(int)
    sites = np.argwhere(mask.any(axis=2))
    cy, cx, *_ = frame_candidates(img, det.opts.ring_threshold, det.opts.spread_gain)
    centres = np.array(lab.centres, np.float64).reshape(-1, 2)
    tex = _texture_at(img, np.round(centres[:, 0]).astype(np.int64),
                      np.round(centres[:, 1]).astype(np.int64), det.opts.texture_px)
    rows = []
    for (y, x), kind, t in zip(centres, lab.kinds, tex):
        own = sites[(np.abs(sites[:, 0] - y) <= 1.01) & (np.abs(sites[:, 1] - x) <= 1.01)]
        rows.append({"frame": frame, "kind": kind, "size": len(own),
                     "contrast": int(max(abs(got[a, b] - ref[a, b]) for a, b in own)),
                     "texture": float(t), "demosaic": lab.demosaic,
                     "proposed": bool(np.any(np.hypot(cy - y, cx - x) <= 2.5))})
    return rows


BINS = {"kind": None, "frame": None, "size": None,
        "contrast": (60, 90, 130, 180, 256), "texture": (0, 4, 8, 16, 32, 1e9)}


def print_breakdown(b: dict) -> dict:
    """Where the net path's misses are: per group, the share of defects the ring rule
    proposes, that get a net tile, and that are found at the shipped bar and at the bar
    of <= 3 false/MP; then false detections per frame."""
    bars = b["bars"]
    table = {}
    for key, edges in BINS.items():
        groups: dict = {}
        for r in b["defects"]:
            v = r[key]
            if edges is not None:
                i = int(np.searchsorted(edges, v, side="right")) - 1
                v = (i, f"{edges[i]:g}-{edges[i + 1]:g}" if edges[i + 1] < 1e9 else f">={edges[i]:g}")
            else:
                v = (v, v)
            groups.setdefault(v, []).append(r)
        for order, v in sorted(groups, key=lambda g: (str(type(g[0])), g[0])):
            rs = groups[(order, v)]
            n = len(rs)
            row = {"n": n, "proposed": sum(r["proposed"] for r in rs) / n,
                   "tiled": sum(r["tiled"] for r in rs) / n,
                   **{f"found_{name}": sum(r["score"] is not None and r["score"] >= bar for r in rs) / n
                      for name, bar in bars.items()}}
            table[f"{key}={v}"] = {a: round(c, 3) for a, c in row.items()}
    rs = b["defects"]
    miss = {"not_proposed": sum(not r["proposed"] for r in rs),
            "proposed_no_tile": sum(r["proposed"] and not r["tiled"] for r in rs),
            **{f"tiled_below_{name}": sum(r["tiled"] and r["score"] < bar for r in rs)
               for name, bar in bars.items()}}
    fp = {name: {f: sum(1 for k, s in b["false"] if k == f and s >= bar) for f in range(1 + max(k for k, _ in b["false"]))}
          for name, bar in bars.items()} if b["false"] else {}
    print(f"single-frame breakdown (net path; bars {bars})")
    for k, row in table.items():
        print(f"  {k:18s} " + ", ".join(f"{a}={c}" for a, c in row.items()))
    print("  misses: " + ", ".join(f"{a}={c}" for a, c in miss.items()))
    for name, per in fp.items():
        print(f"  false detections per frame at {name}: {per}")
    return {"groups": table, "misses": miss, "false_per_frame": fp}


def run_timing(det, repeats: int = 3) -> dict:
    """ms per frame (best of ``repeats``) at the live size and at the HQ camera's full size,
    for the classic rule and the net with the single-frame and the live tile budgets."""
    from dataclasses import replace

    from device.defects.net import LIVE_MAX_TILES, DefectDetector, DefectOptions

    big = photos()[0]
    out = {}
    for name, (w, h) in (("640x480", (640, 480)), ("4056x3040", (4056, 3040))):
        rng = np.random.default_rng(3)
        img, _, _ = degrade.inject_defects(cv2.resize(big, (w, h), interpolation=cv2.INTER_CUBIC),
                                           int(60 * w * h / (W * H)), rng, mode="bayer", jpeg_quality=90)
        runs = {"classic": lambda: frame_candidates(img)}
        if det is not None:
            live = DefectDetector(det.model, det.meta, DefectOptions(max_tiles=LIVE_MAX_TILES))
            # The score before the photosite-signature terms (issue 15), for a side-by-side cost.
            plain = DefectDetector(det.model, det.meta, replace(det.opts, level_weight=0.0,
                                                                dominance_weight=0.0, shared_weight=0.0))
            runs["net"] = lambda: det.detect(img)
            runs["net_no_signature"] = lambda: plain.detect(img)
            runs["net_live"] = lambda: live.detect(img)
        for m, fn in runs.items():
            fn()
            best = min(_timed(fn) for _ in range(repeats))
            out.setdefault(m, {})[f"ms_{name}"] = round(1000 * best, 1)
    return out


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sequences", type=int, default=6)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--model", help="defect model (default: the configured one, models/defects.tflite)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--breakdown", action="store_true",
                    help="single frames: where the net path's misses are (per kind, frame, "
                         "contrast, texture; not proposed vs scored low)")
    ap.add_argument("--only", choices=("sequence", "sweep", "single", "timing"),
                    help="run one part (default: all)")
    args = ap.parse_args()
    det = net_detector(args.model)
    out = {}
    if args.only in (None, "sequence"):
        out["sequence_demosaiced"] = run_sequences(args.sequences, 0, det)
        out["sequence_jpeg90"] = run_sequences(args.sequences, 90, det)
    if args.only in (None, "sweep"):
        for name, r in run_sweeps(det).items():
            out[f"sweep_{name}"] = r
        for name, r in run_sweeps(det, population=True).items():
            out[f"sweep_{name}_real_statistics"] = r
    if args.only in (None, "single"):
        bd = {"defects": [], "false": []} if args.breakdown and det is not None else None
        out["single_frame_jpeg90"] = run_single(args.images, det, bd)
        if bd is not None:
            out["single_frame_breakdown"] = print_breakdown(bd)
    if args.only in (None, "timing"):
        out["timing"] = run_timing(det)
    targets = {"sequence_demosaiced": "recall >= 0.98, <= 1 false/MP, 0 on clean",
               "sequence_jpeg90": "(no target; for reference)",
               "single_frame_jpeg90": "recall >= 0.9 at <= 3 false/MP",
               "timing": "ms per frame; net = single-frame tile budget, net_no_signature = the same "
                         "without the level/dominance/shared terms, net_live = the loop's"}
    for name, *_ in SWEEPS:
        targets[f"sweep_{name}"] = "fixed camera, focus sweep: recall >= 0.95, <= 1 false/MP, 0 on clean"
        targets[f"sweep_{name}_real_statistics"] = "same, defects with real statistics (clusters of 2-3)"
    for k, v in out.items():
        if k not in targets:
            continue
        print(f"{k}  [{targets[k]}]")
        for m, r in v.items():
            print(f"  {m:8s} " + ", ".join(f"{a}={b}" for a, b in r.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
