"""Benchmark: the sharpness verdict on ROI crops of the real focus sweeps beside the project.

Every judged region of ``tests/sweep_truth.py`` (the PCB sweep, the Pi board and USB
dongle macro sweeps): its judged-sharp frames against its judged-blurred ones, scored the
way the device scores an ROI (``FocusScorer.analyse`` on the int8 model, at the working
scale), side by side with the classic ``focus`` value and Tenengrad on the same crops.

Reported per region and pooled: ROC AUC of ``sharp_prob``, of ``focus`` and of
Tenengrad (a value that ranks sharp crops above blurred ones), and the binary accuracy of
``label == "sharp"``. Classic values are compared within a region only: their scale
depends on the content, so pooled classic AUCs are per-region means. The judged-blurred
frames are the tails of each region's focus curve, spot-checked by eye, so the classic
AUC is 1.0 almost by construction: the net's figures are the informative ones.

    python bench/bench_real_sweeps.py [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from device.scoring.focus_net import FocusScorer  # noqa: E402
from device.scoring.measures import score_frame  # noqa: E402
from tests.sweep_truth import REAL_SWEEP_REGIONS  # noqa: E402
from train.evaluate import roc_curve  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def frames_of(region) -> list[Path]:
    folder = SHARED / region.sweep
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))


def region_rows(scorer: FocusScorer, region) -> list[dict]:
    paths = frames_of(region)
    rows = []
    for i in sorted(region.good | region.blurred):
        grey = cv2.imread(str(paths[i]), cv2.IMREAD_GRAYSCALE)
        v = scorer.analyse(grey, region.roi)
        m = score_frame(grey, region.roi)
        rows.append({"frame": i, "sharp": i in region.good, "sharp_prob": round(v.sharp_prob, 4),
                     "label": v.label, "certainty": round(v.certainty, 3),
                     "blur_px": None if v.blur_px is None else round(v.blur_px, 2),
                     "focus": m.focus, "tenengrad": m.measures["tenengrad"]})
    return rows


def auc(rows, key) -> float:
    return round(roc_curve(np.array([r[key] for r in rows]), np.array([r["sharp"] for r in rows]))[2], 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    missing = [r.sweep for r in REAL_SWEEP_REGIONS if not (SHARED / r.sweep).is_dir()]
    if missing:
        print(f"bench_real_sweeps: error: ../shared/data/{missing[0]} is absent", file=sys.stderr)
        return 2
    scorer = FocusScorer.from_path(num_threads=1)
    out, every = {"regions": {}}, []
    for region in REAL_SWEEP_REGIONS:
        rows = region_rows(scorer, region)
        every += rows
        out["regions"][region.name] = {
            "sweep": region.sweep, "roi": list(region.roi), "crops": len(rows),
            "auc_sharp_prob": auc(rows, "sharp_prob"), "auc_focus": auc(rows, "focus"),
            "auc_tenengrad": auc(rows, "tenengrad"),
            "accuracy_label": round(np.mean([(r["label"] == "sharp") == r["sharp"] for r in rows]), 3),
            "rows": rows}
    regs = out["regions"].values()
    out["pooled"] = {
        "crops": len(every),
        "auc_sharp_prob": auc(every, "sharp_prob"),
        "auc_focus_mean_of_regions": round(float(np.mean([r["auc_focus"] for r in regs])), 3),
        "auc_tenengrad_mean_of_regions": round(float(np.mean([r["auc_tenengrad"] for r in regs])), 3),
        "accuracy_label": round(np.mean([(r["label"] == "sharp") == r["sharp"] for r in every]), 3)}
    print(f"{'region':32} {'crops':>5} {'AUC p(sharp)':>12} {'AUC focus':>9} {'AUC tenengrad':>13} {'acc label':>9}")
    for name, r in out["regions"].items():
        print(f"{name:32} {r['crops']:5d} {r['auc_sharp_prob']:12.3f} {r['auc_focus']:9.3f} "
              f"{r['auc_tenengrad']:13.3f} {r['accuracy_label']:9.3f}")
    p = out["pooled"]
    print(f"{'pooled':32} {p['crops']:5d} {p['auc_sharp_prob']:12.3f} {p['auc_focus_mean_of_regions']:9.3f} "
          f"{p['auc_tenengrad_mean_of_regions']:13.3f} {p['accuracy_label']:9.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
