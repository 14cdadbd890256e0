"""Benchmark: the sharpness verdict on ROI crops of the real focus sweeps beside the project.

Every judged region of ``train/sweep_truth.py`` (the PCB sweep, the Pi board and USB
dongle macro sweeps): its judged-sharp frames against its judged-blurred ones, judged by
the shipped int8 model through the one shared evaluation (``train.real_sweeps``, which
``focus-train evaluate`` runs on the float model), side by side with the classic ``focus``
value and Tenengrad on the same crops. Two tile budgets: the live loop's (what the HUD and
capture-when-sharp see) and ``focus-assist score``'s.

With ``--model NAME=PATH`` (repeatable) the same figures are computed for each int8
file in one run, followed by a side-by-side table and the Kaggle samples through the
device's own path (``FocusScorer.analyse``, whole image), the comparison a candidate
model must win before it replaces ``models/focus.tflite``.

    python bench/bench_real_sweeps.py [--model NAME=PATH ...] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.scoring.focus_net import FocusScorer  # noqa: E402
from device.scoring.pooling import FocusNetOptions  # noqa: E402
from train import real_sweeps as RS  # noqa: E402


KAGGLE = RS.SHARED_DATA / "kaggle_blur_samples"


def _model_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"{path}: no such model file")
    return name, path


def kaggle_rows(scorer: FocusScorer) -> list[dict]:
    """Each Kaggle sample as the device judges it: label, p(sharp), p(motion)."""
    import cv2

    rows = []
    for p in sorted(KAGGLE.glob("*.[jJ][pP][gG]")):
        v = scorer.analyse(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE))
        truth = {"S": "sharp", "F": "defocus", "M": "motion"}[p.stem[-1].upper()]
        rows.append({"photo": p.stem, "truth": truth, "label": v.label,
                     "sharp_prob": round(float(v.sharp_prob), 3),
                     "motion_prob": round(float(v.probs["motion"]), 3)})
    return rows


def side_by_side(out: dict) -> list[str]:
    names = list(out)
    lines = ["| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    regions = list(out[names[0]]["live"]["regions"])
    for budget in ("live", "score"):
        for reg in regions:
            lines.append(f"| {budget}: {reg} AUC / accuracy | " + " | ".join(
                f"{out[n][budget]['regions'][reg]['auc_sharp_prob']:.3f} / "
                f"{out[n][budget]['regions'][reg]['accuracy_label']:.3f}" for n in names) + " |")
        lines.append(f"| **{budget}: pooled AUC / accuracy** | " + " | ".join(
            f"{out[n][budget]['pooled']['auc_sharp_prob']:.3f} / {out[n][budget]['pooled']['accuracy_label']:.3f}"
            for n in names) + " |")
    lines.append("| live verdict, return pass: pooled AUC / accuracy | " + " | ".join(
        f"{out[n]['live verdict (net and curve)']['pooled']['return_pass']['auc']:.3f} / "
        f"{out[n]['live verdict (net and curve)']['pooled']['return_pass']['accuracy']:.3f}" for n in names) + " |")
    if all("kaggle" in out[n] for n in names):
        for n in names:
            k = out[n]["kaggle"]
            out[n]["kaggle_right"] = (sum((r["label"] == "sharp") == (r["truth"] == "sharp") for r in k),
                                      sum(r["label"] == r["truth"] for r in k), len(k))
        lines.append("| **Kaggle, sharp vs blurred / 3 classes** | " + " | ".join(
            "{0}/{2} / {1}/{2}".format(*out[n]["kaggle_right"]) for n in names) + " |")
        for i, r in enumerate(out[names[0]]["kaggle"]):
            lines.append(f"| Kaggle {r['photo']} ({r['truth']}): label p(sharp)/p(motion) | " + " | ".join(
                f"{out[n]['kaggle'][i]['label']} {out[n]['kaggle'][i]['sharp_prob']:.2f}/"
                f"{out[n]['kaggle'][i]['motion_prob']:.2f}" for n in names) + " |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--model", action="append", type=_model_arg, default=[], metavar="NAME=PATH",
                    help="an int8 focus model to compare (repeatable; default: the shipped one alone)")
    args = ap.parse_args()
    missing = [r.sweep for r in RS.REAL_SWEEP_REGIONS if not (RS.SHARED_DATA / r.sweep).is_dir()]
    if missing:
        print(f"bench_real_sweeps: error: ../shared/data/{missing[0]} is absent", file=sys.stderr)
        return 2
    if not args.model:
        return _one(FocusScorer.from_path(num_threads=1), args.json)
    every = {}
    for name, path in args.model:
        print(f"\n## {name}: {path}")
        every[name] = _figures(FocusScorer.from_path(path, num_threads=1))
        if KAGGLE.is_dir():
            every[name]["kaggle"] = kaggle_rows(FocusScorer.from_path(path, num_threads=1))
    print("\n## side by side (int8, device path)\n")
    print("\n".join(side_by_side(every)))
    if args.json:
        Path(args.json).write_text(json.dumps(every, indent=1))
    return 0


def _one(scorer: FocusScorer, json_out: str | None) -> int:
    out = _figures(scorer)
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=1))
    return 0


def _figures(scorer: FocusScorer) -> dict:
    out = {}
    for name, opts in (("live", RS.LIVE_OPTIONS), ("score", FocusNetOptions())):
        res = RS.evaluate(scorer.predict, opts=opts)
        out[name] = res
        print(f"\n{name}: at most {opts.max_tiles} tiles per crop")
        print("\n".join(RS.table(res)))
    # The live verdict: the net and the focus curve, the sweep rocked through focus and back.
    for name, predict in (("live verdict (net and curve)", scorer.predict), ("curve alone", None)):
        res = RS.evaluate_fused(predict)
        out[name] = res
        print(f"\n{name}: each sweep played through focus and back, {RS.PLAY_DT_S} s a frame")
        print("\n".join(RS.fused_table(res)))
    return out


if __name__ == "__main__":
    sys.exit(main())
