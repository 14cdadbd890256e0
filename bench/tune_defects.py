"""Choose the single-frame defect score's weights on scikit-image photos.

    python bench/tune_defects.py [--model models/defects.tflite] [--reps 3] [--max-fp 2]
                                 [--train-photos N] [--signature]

``device.defects.net.DefectDetector`` scores each point as ``logit(p) + strength_weight *
log(strength) + pixel_weight * log(pixel) - texture_weight * log(1 + texture)`` and
calls it a defect from ``min_score`` up. This script injects defects into scikit-image's
bundled photos (Bayer mosaic, OpenCV demosaic, JPEG q90, as ``bench_defects.py`` does
with the Kaggle shots and the PCB sweep, which are never used here; ``--train-photos N``
adds 1000x750 crops of N photos of ``../shared/data/train_photos``, every fourth made
microscope-like), collects every
point's evidence once, then tries a grid of weights. For each it takes the lowest bar
with at most ``--max-fp`` false detections per megapixel and reports the recall there.
The best setting goes into ``DefectOptions`` by hand; ``bench_defects.py`` then gives
the figures on photos the choice never saw. ``--signature`` grids the photosite
signature terms (``level_weight``, ``dominance_weight``, ``shared_weight``) instead, the
other weights as they are.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from device.defects.net import DefectDetector  # noqa: E402
from device.common.scenes import PHOTO_NAMES, load_photo  # noqa: E402
from train import degrade  # noqa: E402

DEFECTS_PER_MP = 80        # bench_defects.py: 60 in a 0.75 MP frame
TOL = 2.5                  # px, as device.defects.sensor_check.match
TRAIN_PHOTOS = ROOT.parent / "shared" / "data" / "train_photos"


def frames(reps: int, seed: int = 11):
    """(image, defect centres (y, x)) for every bundled clean photo, ``reps`` times."""
    rng = np.random.default_rng(seed)
    for name in PHOTO_NAMES:
        photo = load_photo(name)
        n = max(1, int(DEFECTS_PER_MP * photo.shape[0] * photo.shape[1] / 1e6))
        for _ in range(reps):
            img, _, lab = degrade.inject_defects(photo, n, rng, mode="bayer", jpeg_quality=90)
            yield img, np.array(lab.centres, np.float64).reshape(-1, 2)


def train_photo_frames(n_photos: int, seed: int = 5):
    """(image, defect centres) for 1000x750 crops of ``n_photos`` photos drawn from
    ``../shared/data/train_photos`` (training material; every fourth made microscope-like),
    injected as ``bench_defects.py`` injects its evaluation frames."""
    import cv2

    paths = sorted(p for p in TRAIN_PHOTOS.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        sys.exit(f"no photos in {TRAIN_PHOTOS}")
    rng = np.random.default_rng(seed)
    for j, i in enumerate(rng.choice(len(paths), min(n_photos, len(paths)), replace=False)):
        im = cv2.imread(str(paths[i]))
        if im is None:
            continue
        h, w = min(750, im.shape[0]), min(1000, im.shape[1])
        oy, ox = rng.integers(0, im.shape[0] - h + 1), rng.integers(0, im.shape[1] - w + 1)
        crop = im[oy:oy + h, ox:ox + w]
        if j % 4 == 3:
            crop = degrade.microscope_like(crop, rng)
        img, _, lab = degrade.inject_defects(crop, int(DEFECTS_PER_MP * h * w / 1e6), rng,
                                             mode="bayer", jpeg_quality=90)
        yield img, np.array(lab.centres, np.float64).reshape(-1, 2)


def nearest_truth(ev, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest defect within ``TOL`` of each point, or -1."""
    if len(ev.xs) == 0 or len(centres) == 0:
        return np.full(len(ev.xs), -1, np.int64)
    d = np.hypot(ev.ys[:, None] - centres[None, :, 0], ev.xs[:, None] - centres[None, :, 1])
    j = d.argmin(1)
    return np.where(d[np.arange(len(j)), j] <= TOL, j, -1)


def best_bar(scores: np.ndarray, truth_id: np.ndarray, n_truth: int, mp: float,
             max_fp: float) -> tuple[float, float, float]:
    """(recall, false per MP, bar) at the lowest bar with at most ``max_fp`` false per MP.
    ``truth_id`` is globally unique per defect (-1: a false detection)."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth_id[order]
    false = np.cumsum(t < 0)
    first = np.zeros(len(t), bool)       # first (best) detection of each defect
    seen = set()
    for i, v in enumerate(t.tolist()):
        if v >= 0 and v not in seen:
            seen.add(v)
            first[i] = True
    found = np.cumsum(first)
    # A bar includes every point tied with it, so it can only sit at the end of a tie.
    end_of_tie = np.r_[s[1:] != s[:-1], True]
    ok = np.nonzero(end_of_tie & (false <= max_fp * mp))[0]
    if len(ok) == 0:
        return 0.0, 0.0, float("inf")
    k = ok[-1]
    return float(found[k] / max(n_truth, 1)), float(false[k] / mp), float(s[k])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="defect model (default: the shipped one)")
    ap.add_argument("--reps", type=int, default=3, help="injections per photo (default 3)")
    ap.add_argument("--max-fp", type=float, default=2.0,
                    help="false detections per MP allowed on these photos (default 2: "
                         "margin under the benchmark's 3)")
    ap.add_argument("--train-photos", type=int, default=0, metavar="N",
                    help="also use crops of N photos of ../shared/data/train_photos")
    ap.add_argument("--signature", action="store_true",
                    help="grid the photosite signature weights (level, dominance, shared)")
    ap.add_argument("--json", help="also write the grid to this file")
    args = ap.parse_args()

    det = DefectDetector.from_path(args.model, 1)
    evs, ids, mp, n_truth = [], [], 0.0, 0
    sources = itertools.chain(frames(args.reps), train_photo_frames(args.train_photos)
                              if args.train_photos else ())
    for img, centres in sources:
        ev = det.evidence(img)
        t = nearest_truth(ev, centres)
        evs.append(ev)
        ids.append(np.where(t >= 0, t + n_truth, -1))
        n_truth += len(centres)
        mp += img.shape[0] * img.shape[1] / 1e6
    print(f"{len(evs)} frames, {mp:.2f} MP, {n_truth} defects, "
          f"{sum(len(e.xs) for e in evs)} points", file=sys.stderr)

    if args.signature:
        grid = {"level_weight": (0.0, 1.0, 2.0, 3.0),
                "dominance_weight": (0.0, 0.5, 1.0, 1.5),
                "shared_weight": (0.0, 1.0, 2.0)}
    else:
        grid = {"strength_weight": (0.0, 0.25, 0.5, 1.0, 1.5),
                "pixel_weight": (0.0, 0.5, 1.0, 2.0),
                "texture_weight": (0.0, 1.0, 2.0, 3.0, 4.0)}
    base = det.opts
    rows = []
    for values in itertools.product(*grid.values()):
        d = DefectDetector(det.model, det.meta, replace(base, **dict(zip(grid, values))))
        scores, truth = [], []
        for ev, tid in zip(evs, ids):
            kept = d.decide(ev, d.score(ev))
            scores += [sc for _, sc in kept]
            truth += [int(tid[i]) for i, _ in kept]
        recall, fp, bar = best_bar(np.array(scores), np.array(truth, np.int64), n_truth, mp, args.max_fp)
        rows.append({**dict(zip(grid, values)),
                     "min_score": round(bar, 3), "recall": round(recall, 4), "false_per_mp": round(fp, 2)})
    rows.sort(key=lambda r: -r["recall"])
    cur = next((r for r in rows if all(r[k] == getattr(base, k) for k in grid)),
               {"recall": None, "min_score": None})
    print(f"at <= {args.max_fp:g} false/MP on scikit-image photos (current weights: "
          f"recall {cur['recall']}, bar {cur['min_score']}):")
    for r in rows[:8]:
        print("  " + ", ".join(f"{k}={v}" for k, v in r.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
