"""MODEL_DIR (from focus-train) -> .tflite + metadata JSON, gated by a parity check.

The converted model is always scored again on the blind evaluation split, through the
same runtime class the device uses (``device.scoring.inference.TFLiteModel``), and compared with
the Keras model it came from. A conversion that loses more than 1 accuracy point or
0.01 AUC is rejected; for int8 the most error-prone layers are first kept in float.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from device.errors import FocusAssistError, ModelError
from device.scoring.inference import TFLiteModel, metadata_path
from device.common.preprocess import (DEFECT_KINDS, DEFECT_TILE, FLAT_STD, FOCUS_CLASSES,
                               FOCUS_MAX_BLUR_PX, FOCUS_TILE, MIN_NORM_STD, NORM_CLIP)

from . import quantize
from .metrics import defect_metrics, focus_metrics

log = logging.getLogger(__name__)

MAX_ACCURACY_DROP = 0.01   # one point
MAX_AUC_DROP = 0.01
METADATA_FORMAT = 1

INPUT_SHAPES = {"focus": (FOCUS_TILE, FOCUS_TILE, 1), "defects": (DEFECT_TILE, DEFECT_TILE, 3)}
OUTPUTS = {
    "focus": [
        {"name": "probs", "shape": [len(FOCUS_CLASSES)],
         "meaning": "softmax over classes (sharp, defocus, motion) for one tile"},
        {"name": "blur_px", "shape": [1],
         "meaning": "blur size in pixels of the working frame: defocus disc radius, or half "
                    "the motion trajectory length; 0 when sharp"},
    ],
    "defects": [
        {"name": "heatmap", "shape": [DEFECT_TILE, DEFECT_TILE, len(DEFECT_KINDS)],
         "meaning": "per-pixel sigmoid probability that a defect of kind DEFECT_KINDS[k] "
                    "(dead, hot, stuck) sits at that pixel"},
    ],
}
NORMALISATION = {
    "focus": {"function": "device.common.preprocess.normalize_focus_tiles",
              "input": "grey uint8 tile of the working (lores, ~640x480) frame",
              "formula": "clip((t - mean(t)) / max(std(t), MIN_NORM_STD), -NORM_CLIP, NORM_CLIP)",
              "MIN_NORM_STD": MIN_NORM_STD, "NORM_CLIP": NORM_CLIP, "FLAT_STD": FLAT_STD,
              "FOCUS_MAX_BLUR_PX": FOCUS_MAX_BLUR_PX},
    "defects": {"function": "device.common.preprocess.normalize_defect_tiles",
                "input": "BGR uint8 tile of the analysed image", "formula": "t / 255"},
}


class ParityError(FocusAssistError):
    """The converted model scores measurably worse than the Keras model."""


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    return keras


def load_model_dir(model_dir: str | os.PathLike):
    """(keras model, training card dict, kind) from a focus-train output directory."""
    d = Path(model_dir)
    mpath = d / "model.keras"
    if not d.is_dir():
        raise ModelError(f"{d}: not a directory (expected a focus-train output directory "
                         "holding model.keras and model_card.json)")
    if not mpath.is_file():
        raise ModelError(f"{mpath}: not found (expected the Keras model written by focus-train)")
    try:
        model = _keras().saving.load_model(mpath, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{mpath}: cannot be loaded as a Keras model ({first})") from None
    card = {}
    cpath = d / "model_card.json"
    if cpath.is_file():
        try:
            card = json.loads(cpath.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"{cpath}: unreadable model card ({exc})") from None
    shape = tuple(int(v) for v in model.input_shape[1:])
    kinds = [k for k, s in INPUT_SHAPES.items() if s == shape]
    kind = card.get("kind") if isinstance(card, dict) else None
    if kind not in INPUT_SHAPES:
        if not kinds:
            raise ModelError(f"{mpath}: input shape {shape} is neither a focus net "
                             f"{INPUT_SHAPES['focus']} nor a defect net {INPUT_SHAPES['defects']}")
        kind = kinds[0]
    elif shape != INPUT_SHAPES[kind]:
        raise ModelError(f"{mpath}: card says {kind!r} but the input shape is {shape}, "
                         f"expected {INPUT_SHAPES[kind]}")
    return model, card, kind


def keras_outputs(model, x: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    res = model.predict(x, batch_size=256, verbose=0)
    if not isinstance(res, (list, tuple)):
        res = [res]
    names = list(getattr(model, "output_names", None) or [o["name"] for o in OUTPUTS[kind]])
    out = {n: np.asarray(r, np.float32) for n, r in zip(names, res)}
    missing = [o["name"] for o in OUTPUTS[kind] if o["name"] not in out]
    if missing:
        raise ModelError(f"Keras model has outputs {names}, expected "
                         f"{[o['name'] for o in OUTPUTS[kind]]}")
    return out


def match_outputs(tfl: TFLiteModel, k_out: dict[str, np.ndarray], x: np.ndarray,
                  kind: str) -> list[dict]:
    """Which TFLite output tensor is which named output: same shape, closest values."""
    t_out = tfl.run(x)
    spec = []
    used = set()
    for o in OUTPUTS[kind]:
        ref = k_out[o["name"]]
        cands = [i for i, s in enumerate(tfl.output_shapes)
                 if s == ref.shape[1:] and i not in used]
        if not cands:
            raise ModelError(f"{tfl.path}: no output of shape {ref.shape[1:]} for {o['name']}")
        best = min(cands, key=lambda i: float(np.mean(np.abs(t_out[i] - ref))))
        used.add(best)
        spec.append(dict(o, tensor=tfl.output_names[best]))
    return spec


def tflite_outputs(tfl: TFLiteModel, spec: list[dict], x: np.ndarray) -> dict[str, np.ndarray]:
    res = tfl.run(x)
    return {o["name"]: res[tfl.output_names.index(o["tensor"])] for o in spec}


def score(kind: str, out: dict[str, np.ndarray], y) -> dict:
    if kind == "focus":
        return focus_metrics(out["probs"], out["blur_px"], y)
    return defect_metrics(out["heatmap"], y)


def parity_failures(ref: dict, got: dict) -> list[str]:
    fails = []
    for key, limit in (("accuracy", MAX_ACCURACY_DROP), ("auc", MAX_AUC_DROP),
                       ("sharp_auc", MAX_AUC_DROP)):
        if key in ref and ref[key] == ref[key]:
            drop = ref[key] - got.get(key, float("nan"))
            if not drop <= limit:   # also catches NaN
                fails.append(f"{key} {ref[key]:.4f} -> {got.get(key, float('nan')):.4f} "
                             f"(drop {drop:.4f} > {limit})")
    return fails


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def convert_model_dir(model_dir: str | os.PathLike, preset: str = "int8",
                      out: Optional[str | os.PathLike] = None, data=None,
                      rep_n: int = 500, eval_n: Optional[int] = None,
                      seed: Optional[int] = None, max_denylist: int = 8) -> dict:
    """Convert, check parity, write ``out`` + metadata (+ card copy). Returns the metadata.

    ``data`` is the training data builder (``train.data`` unless a test passes a stand-in);
    it provides ``representative_inputs(kind, n, seed)`` and ``evaluation_split(kind, seed, n)``.
    Raises ``ParityError`` (and writes nothing) when the converted model falls short.
    """
    if preset not in quantize.PRESETS:
        raise ModelError(f"unknown preset {preset!r}; expected one of {', '.join(quantize.PRESETS)}")
    model, card, kind = load_model_dir(model_dir)
    if data is None:
        from train import data  # the one copy of the preprocessing
    if seed is None:     # focus-train records it under "training"; older cards at the top
        seed = card.get("seed", (card.get("training") or {}).get("seed", 0))
    seed = int(seed)
    out = Path(out) if out else Path(model_dir) / f"{kind}_{preset}.tflite"
    # The same image folders the model was trained with (none: the built-in photos).
    images = list((card.get("data") or {}).get("images") or [])
    extra = {"images": images} if images else {}

    rep = np.asarray(data.representative_inputs(kind, rep_n, seed, **extra), np.float32)
    x_eval, y_eval = data.evaluation_split(kind, seed, eval_n, **extra)
    x_eval = np.asarray(x_eval, np.float32)
    k_out = keras_outputs(model, x_eval, kind)
    ref = score(kind, k_out, y_eval)
    log.info("Keras on the evaluation split (n=%d): %s", len(x_eval), ref)

    attempts = []
    with tempfile.TemporaryDirectory() as tmp:
        def try_one(blob: bytes, denylist: list[str]):
            p = Path(tmp) / f"try{len(attempts)}.tflite"
            p.write_bytes(blob)
            tfl = TFLiteModel(p, num_threads=os.cpu_count())
            spec = match_outputs(tfl, {k: v[:64] for k, v in k_out.items()}, x_eval[:64], kind)
            got = score(kind, tflite_outputs(tfl, spec, x_eval), y_eval)
            fails = parity_failures(ref, got)
            attempts.append({"denylisted": denylist, "metrics": got, "failures": fails,
                             "bytes": len(blob)})
            log.info("%s%s: %s%s", preset, f" (float: {len(denylist)} tensors)" if denylist
                     else "", got, f"  FAILED: {'; '.join(fails)}" if fails else "")
            return blob, spec, got, fails

        blob, spec, got, fails = try_one(quantize.convert(model, preset, rep), [])
        if fails and preset == "int8":
            ranked = [name for name, _ in quantize.layer_errors(model, rep[:200])]
            k = 1
            while fails and k <= min(max_denylist, len(ranked)):
                blob, spec, got, fails = try_one(quantize.convert_mixed(model, rep, ranked[:k]),
                                                 ranked[:k])
                k *= 2
        if fails:
            raise ParityError(f"{out.name}: {preset} conversion of {model_dir} fails the parity "
                              f"check on {len(x_eval)} held-out {kind} samples: "
                              + "; ".join(fails) + " (nothing written)")

        meta = build_metadata(kind, preset, blob, spec, card, ref, got, attempts, len(x_eval),
                              Path(model_dir), seed, rep_n)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_name(out.name + ".part")
        tmp_out.write_bytes(blob)
        os.replace(tmp_out, out)
    metadata_path(out).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
    cpath = Path(model_dir) / "model_card.json"
    if cpath.is_file():
        shutil.copyfile(cpath, out.with_suffix(".card.json"))
    return meta


def _training_metrics(card: dict) -> dict:
    """The card's metric entries (whatever focus-train chose to record), copied verbatim."""
    keep = {}
    for k, v in card.items():
        if "metric" in k or k in ("evaluation", "test", "blind", "accuracy", "auc", "history"):
            keep[k] = v
    return keep


def build_metadata(kind, preset, blob, spec, card, ref, got, attempts, n_eval, model_dir,
                   seed, rep_n) -> dict:
    import tensorflow as tf
    denylist = attempts[-1]["denylisted"]
    sha = _sha256(blob)
    version = card.get("version") or card.get("model_version") or card.get("name")
    return {
        "format": METADATA_FORMAT,
        "kind": kind,
        "model_version": f"{version or kind}+{sha[:12]}",
        "preset": preset if not denylist else f"{preset}-mixed",
        "bytes": len(blob),
        "sha256": sha,
        "input": {"name": "tile", "shape": list(INPUT_SHAPES[kind]),
                  "tile": INPUT_SHAPES[kind][0],
                  "note": "quantization scale/zero point are read from the model at runtime",
                  "normalisation": NORMALISATION[kind]},
        "classes": list(FOCUS_CLASSES if kind == "focus" else DEFECT_KINDS),
        "outputs": spec,
        "parity": {"evaluation_n": n_eval, "seed": seed, "keras": ref, "tflite": got,
                   "max_accuracy_drop": MAX_ACCURACY_DROP, "max_auc_drop": MAX_AUC_DROP,
                   "float_tensors": denylist, "attempts": len(attempts)},
        "representative_n": rep_n,
        "source": {"model_dir": str(model_dir), "card": "model_card.json" if card else None},
        "training": _training_metrics(card) if isinstance(card, dict) else {},
        "converted": {"at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                      "tensorflow": tf.__version__},
    }
