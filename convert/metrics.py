"""Quality metrics shared by the parity check, the model cards and the benchmarks.

numpy plus scikit-learn's ROC AUC (desktop side only), computed the same way for the Keras model and for the converted model so
a parity drop is a real drop and not a difference in bookkeeping.
"""
from __future__ import annotations

import numpy as np

from device.common.preprocess import DEFECT_KINDS, FOCUS_CLASSES


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn, ties averaged); NaN if only one class is present."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels).ravel().astype(bool)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, np.float64).ravel()))


def focus_metrics(probs: np.ndarray, blur_px: np.ndarray, y: dict) -> dict:
    """3-class accuracy, macro one-vs-rest AUC, sharp-vs-blurred AUC, blur-size MAE."""
    truth = np.argmax(np.asarray(y["probs"]), axis=1)
    pred = np.argmax(probs, axis=1)
    per_class = [auc(probs[:, k], truth == k) for k in range(len(FOCUS_CLASSES))]
    per_class = [a for a in per_class if a == a]   # drop NaN (class absent)
    sharp = FOCUS_CLASSES.index("sharp")
    out = {
        "n": int(len(truth)),
        "accuracy": float(np.mean(pred == truth)),
        "auc": float(np.mean(per_class)) if per_class else float("nan"),
        "sharp_auc": auc(probs[:, sharp], truth == sharp),
        "sharp_vs_blurred_accuracy": float(np.mean((pred == sharp) == (truth == sharp))),
    }
    if "blur_px" in y:
        out["blur_mae_px"] = float(np.mean(np.abs(np.ravel(blur_px) - np.ravel(y["blur_px"]))))
    return out


def defect_metrics(heat: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict:
    """Tile-level "has a defect" accuracy, pixel-level AUC, kind accuracy at true defects."""
    heat = np.asarray(heat, np.float32)
    y = np.asarray(y, np.float32)
    any_pred = heat.max(axis=-1)
    any_true = y.max(axis=-1) >= 0.5
    tile_pred = any_pred.reshape(len(heat), -1).max(axis=1) >= threshold
    tile_true = any_true.reshape(len(y), -1).any(axis=1)
    out = {
        "n": int(len(y)),
        "accuracy": float(np.mean(tile_pred == tile_true)),
        "auc": auc(any_pred, any_true),
    }
    if any_true.any():
        kind_true = np.argmax(y[any_true], axis=-1)
        kind_pred = np.argmax(heat[any_true], axis=-1)
        out["kind_accuracy"] = float(np.mean(kind_true == kind_pred))
        for k, name in enumerate(DEFECT_KINDS):
            out[f"auc_{name}"] = auc(heat[..., k], y[..., k] >= 0.5)
    return out
