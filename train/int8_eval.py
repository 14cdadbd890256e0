"""The focus report's figures (blind tile split, real-photo checks, Kaggle) for an int8
TFLite file, judged through the device's own interpreter (``FocusScorer``), on the split
a training run's card names. It is how a candidate and the shipped model are compared
like with like before a swap: ``focus-train evaluate RUN_DIR --tflite FILE --report-dir DIR``.

The run's card is read, never written; the report goes to ``DIR/report``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from device.errors import InputError, ModelError


class DevicePredictor:
    """``model.predict``-shaped adapter over the device's interpreter, so the report's
    one evaluation (``train.evaluate.evaluate_focus``) scores an int8 file unchanged."""

    def __init__(self, path: str | Path):
        from device.scoring.focus_net import FocusScorer

        self.scorer = FocusScorer.from_path(str(path), num_threads=1)

    def predict(self, x: np.ndarray, batch_size: int = 256, verbose: int = 0) -> dict:
        probs, blur = [], []
        for i in range(0, len(x), batch_size):
            p, b = self.scorer.predict(np.asarray(x[i:i + batch_size], np.float32))
            probs.append(np.asarray(p, np.float32))
            blur.append(np.asarray(b, np.float32).reshape(-1, 1))
        if not probs:
            return {"probs": np.zeros((0, 3), np.float32), "blur_px": np.zeros((0, 1), np.float32)}
        return {"probs": np.concatenate(probs), "blur_px": np.concatenate(blur)}


def evaluate_tflite(run_dir: str | Path, tflite: str | Path, report_dir: str | Path,
                    n: int | None = None, kaggle: str | None = None, progress: bool = False) -> dict:
    """Write ``report_dir/report/report.md`` for ``tflite`` on ``run_dir``'s split; the metrics."""
    from . import evaluate as E

    card_path = Path(run_dir) / "model_card.json"
    if not card_path.is_file():
        raise InputError(f"{run_dir}: not a model dir (no model_card.json); run focus-train first")
    if not Path(tflite).is_file():
        raise InputError(f"--tflite {tflite}: no such file")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{card_path}: not valid JSON ({exc})") from None
    if card.get("kind") != "focus":
        raise InputError(f"--tflite evaluates focus models; {run_dir} is a {card.get('kind')!r} run")
    out = Path(report_dir)
    (out / "report").mkdir(parents=True, exist_ok=True)
    metrics, body = E.evaluate_focus(DevicePredictor(tflite), card, out, n,
                                     str(kaggle or E.default_kaggle_dir()), progress)
    head = f"# {Path(tflite).name} (int8, device interpreter) on the split of {card_path}\n\n"
    (out / "report" / "report.md").write_text(head + body + "\n")
    return metrics
