"""The sharpness verdict on real focus sweeps: every judged region of
``train/sweep_truth.py``, its judged-sharp frames against its judged-blurred ones.

Each crop is judged the way the device judges an ROI (``device.scoring.pooling.judge``,
the live loop's tile budget unless told otherwise) by any ``predict`` function: the float
Keras model in the training report, the int8 TFLite model in ``bench/bench_real_sweeps.py``.
The classic ``focus`` value and Tenengrad are scored on the same crops. Classic values
rank frames within one region only (their scale depends on the content), so their pooled
figures are means over regions; ``sharp_prob`` is pooled over every crop.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

from device.config.verdict import VerdictConfig
from device.errors import InputError
from device.scoring.focus_net import LIVE_MAX_TILES
from device.scoring.measures import score_frame
from device.scoring.pooling import FocusNetOptions, judge
from device.scoring.verdict import FocusCurve, fuse
from train.sweep_truth import REAL_SWEEP_REGIONS, SweepTruth

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LIVE_OPTIONS = FocusNetOptions(max_tiles=LIVE_MAX_TILES)
TARGET_AUC, TARGET_ACCURACY = 0.95, 0.90
# A sweep played as the live loop sees it: one frame per lens position, this far apart.
PLAY_DT_S = 0.1


def sweep_frames(region: SweepTruth, shared: Path = SHARED_DATA) -> list[Path]:
    """The region's sweep in lens order (file-name order)."""
    folder = shared / region.sweep
    if not folder.is_dir():
        raise InputError(f"{folder}: real sweep not found")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def region_rows(predict: Callable, region: SweepTruth, shared: Path = SHARED_DATA,
                opts: FocusNetOptions = LIVE_OPTIONS) -> list[dict]:
    """One row per judged frame of ``region``: the net's verdict and the classic values."""
    paths = sweep_frames(region, shared)
    rows = []
    for i in sorted(region.good | region.blurred):
        grey = cv2.imread(str(paths[i]), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise InputError(f"{paths[i]}: not a readable image")
        v = judge(grey, region.roi, predict, opts)
        m = score_frame(grey, region.roi)
        rows.append({"frame": i, "sharp": i in region.good, "sharp_prob": round(v.sharp_prob, 4),
                     "label": v.label, "certainty": round(v.certainty, 3),
                     "blur_px": None if v.blur_px is None else round(v.blur_px, 2),
                     "focus": m.focus, "tenengrad": m.measures["tenengrad"]})
    return rows


def auc(rows: list[dict], key: str) -> float:
    y = np.array([r["sharp"] for r in rows])
    return round(float(roc_auc_score(y, np.array([r[key] for r in rows], float))), 3)


def accuracy(rows: list[dict]) -> float:
    return round(float(np.mean([(r["label"] == "sharp") == r["sharp"] for r in rows])), 3)


def evaluate(predict: Callable, regions: Iterable[SweepTruth] = REAL_SWEEP_REGIONS,
             shared: Path = SHARED_DATA, opts: FocusNetOptions = LIVE_OPTIONS) -> dict:
    """Per region and pooled: AUC of ``sharp_prob``, ``focus`` and Tenengrad, and the
    accuracy of ``label == "sharp"``."""
    out: dict = {"regions": {}, "max_tiles": opts.max_tiles}
    every: list = []
    for region in regions:
        rows = region_rows(predict, region, shared, opts)
        every += rows
        out["regions"][region.name] = {
            "sweep": region.sweep, "roi": list(region.roi), "crops": len(rows),
            "auc_sharp_prob": auc(rows, "sharp_prob"), "auc_focus": auc(rows, "focus"),
            "auc_tenengrad": auc(rows, "tenengrad"), "accuracy_label": accuracy(rows), "rows": rows}
    regs = list(out["regions"].values())
    out["pooled"] = {
        "crops": len(every), "auc_sharp_prob": auc(every, "sharp_prob"),
        "auc_focus_mean_of_regions": round(float(np.mean([r["auc_focus"] for r in regs])), 3),
        "auc_tenengrad_mean_of_regions": round(float(np.mean([r["auc_tenengrad"] for r in regs])), 3),
        "accuracy_label": accuracy(every)}
    p = out["pooled"]
    out["targets_met"] = bool(p["auc_sharp_prob"] >= TARGET_AUC and p["accuracy_label"] >= TARGET_ACCURACY)
    return out


def table(result: dict) -> list[str]:
    """The figures as Markdown table rows (the report and the benchmark print the same)."""
    lines = ["| region | sweep | crops | AUC p(sharp) | AUC focus | AUC Tenengrad | accuracy of label |",
             "|---|---|---|---|---|---|---|"]
    for name, r in result["regions"].items():
        lines.append(f"| {name} | {r['sweep']} | {r['crops']} | {r['auc_sharp_prob']:.3f} | "
                     f"{r['auc_focus']:.3f} | {r['auc_tenengrad']:.3f} | {r['accuracy_label']:.3f} |")
    p = result["pooled"]
    lines.append(f"| **pooled** | | {p['crops']} | **{p['auc_sharp_prob']:.3f}** | "
                 f"{p['auc_focus_mean_of_regions']:.3f} (mean) | {p['auc_tenengrad_mean_of_regions']:.3f} (mean) | "
                 f"**{p['accuracy_label']:.3f}** |")
    return lines


def trained_on(region: SweepTruth, sweeps: Iterable[str], shared: Path = SHARED_DATA) -> bool:
    """Whether ``region``'s sweep is one of the folders a model was trained on."""
    here = (shared / region.sweep).resolve()
    return any(Path(d).resolve() == here for d in sweeps)


def report_section(predict: Callable, shared: Path = SHARED_DATA,
                   regions: Optional[Iterable[SweepTruth]] = None,
                   trained_sweeps: Iterable[str] = ()) -> tuple[Optional[dict], list[str]]:
    """The training report's section, or a line saying why it was skipped. Regions of
    sweeps the model was trained on are reported apart: only the others are blind."""
    regions = tuple(REAL_SWEEP_REGIONS if regions is None else regions)
    trained_sweeps = tuple(trained_sweeps)
    seen = tuple(r for r in regions if trained_on(r, trained_sweeps, shared))
    regions = tuple(r for r in regions if r not in seen)
    missing = sorted({r.sweep for r in regions if not (shared / r.sweep).is_dir()})
    head = "## Real focus sweeps (judged ROI crops, never trained on)\n"
    if missing:
        return None, [head, f"Skipped: {', '.join(missing)} not found in {shared}.\n"]
    if not regions:
        return None, [head, "Skipped: the model was trained on every judged sweep; none is blind.\n"]
    result = evaluate(predict, regions, shared)
    result["trained_on"] = [r.sweep for r in seen]
    p = result["pooled"]
    apart = ""
    if seen:
        other = evaluate(predict, seen, shared)
        result["trained_regions"] = {k: {kk: vv for kk, vv in v.items() if kk != "rows"}
                                     for k, v in other["regions"].items()}
        apart = ("Regions of sweeps this model was trained on (not blind, not pooled above): " + "; ".join(
            f"{k} AUC {v['auc_sharp_prob']:.3f}, accuracy {v['accuracy_label']:.3f}"
            for k, v in other["regions"].items()) + ".\n")
    return result, [head,
                    "Every judged region of `train/sweep_truth.py`: its judged-sharp frames against "
                    "its judged-blurred ones, each crop judged as the live loop judges an ROI "
                    f"(shared pooling, {result['max_tiles']} tiles at most). Targets: AUC ≥ {TARGET_AUC}, "
                    f"accuracy ≥ {TARGET_ACCURACY}, beating `focus`. Classic AUCs are 1.0 nearly by "
                    "construction (the judged-blurred frames are the tails of each curve).\n",
                    *table(result), "",
                    f"**Pooled: AUC {p['auc_sharp_prob']:.3f}, accuracy {p['accuracy_label']:.3f}: "
                    f"targets {'met' if result['targets_met'] else 'not met'}.**\n", apart]


def _play(verdicts: list, values: list, order: list, cfg: VerdictConfig, dt: float) -> dict:
    """Feed frames in ``order`` through one focus curve; the fused verdict per visit."""
    curve, out = FocusCurve(cfg), []
    for k, i in enumerate(order):
        out.append((i, fuse(verdicts[i], curve.update(values[i], k * dt), cfg)))
    return out


def fused_rows(predict: Callable, region: SweepTruth, shared: Path = SHARED_DATA,
               opts: FocusNetOptions = LIVE_OPTIONS, cfg: VerdictConfig = VerdictConfig(),
               dt: float = PLAY_DT_S) -> dict:
    """The live verdict (``device.scoring.verdict``: net and focus curve) on the judged
    frames of ``region``, with the sweep played through focus and back as a user rocks
    the ring: ``first_pass`` (the curve has not yet gone over its top for the early frames)
    and ``return_pass`` (the top is known). ``predict=None`` is the curve alone."""
    paths = sweep_frames(region, shared)
    verdicts, values = [], []
    for p in paths:
        grey = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise InputError(f"{p}: not a readable image")
        verdicts.append(None if predict is None else judge(grey, region.roi, predict, opts))
        values.append(score_frame(grey, region.roi).focus)
    n = len(paths)
    played = _play(verdicts, values, list(range(n)) + list(range(n - 2, -1, -1)), cfg, dt)
    judged = region.good | region.blurred
    out = {}
    for name, visits in (("first_pass", played[:n]), ("return_pass", played[n:])):
        out[name] = [{"frame": i, "sharp": i in region.good,
                      "sharp_prob": round(v.sharp_prob, 4) if v else 0.5,
                      "label": v.label if v else "unknown",
                      "decided_by": v.decided_by if v else "nothing"}
                     for i, v in visits if i in judged]
    return out


def evaluate_fused(predict: Callable, regions: Iterable[SweepTruth] = REAL_SWEEP_REGIONS,
                   shared: Path = SHARED_DATA, opts: FocusNetOptions = LIVE_OPTIONS,
                   cfg: VerdictConfig = VerdictConfig()) -> dict:
    """AUC and accuracy of the live verdict, per region and pooled, for both passes."""
    out: dict = {"regions": {}, "pooled": {}}
    pooled: dict = {"first_pass": [], "return_pass": []}
    for region in regions:
        rows = fused_rows(predict, region, shared, opts, cfg)
        out["regions"][region.name] = {
            k: {"crops": len(v), "auc": auc(v, "sharp_prob"), "accuracy": accuracy(v),
                "decided_by": sorted({r["decided_by"] for r in v}), "rows": v}
            for k, v in rows.items()}
        for k, v in rows.items():
            pooled[k] += v
    for k, v in pooled.items():
        out["pooled"][k] = {"crops": len(v), "auc": auc(v, "sharp_prob"), "accuracy": accuracy(v)}
    return out


def fused_table(result: dict) -> list[str]:
    lines = ["| region | AUC, first pass | accuracy, first pass | AUC, return pass | accuracy, return pass |",
             "|---|---|---|---|---|"]
    for name, r in list(result["regions"].items()) + [("**pooled**", result["pooled"])]:
        a, b = r["first_pass"], r["return_pass"]
        lines.append(f"| {name} | {a['auc']:.3f} | {a['accuracy']:.3f} | {b['auc']:.3f} | {b['accuracy']:.3f} |")
    return lines
