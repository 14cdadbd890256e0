"""Tiny end-to-end training runs: the loss falls, the model dir is complete, resume works,
and ``evaluate`` writes its report and plots. Small data, CPU, about a minute each."""
import json
import re
import shutil

import numpy as np
import pytest

from device.common.preprocess import DEFECT_KINDS, DEFECT_TILE, FOCUS_CLASSES, FOCUS_TILE
from train.cli import main

TINY = ["--dead-leaves", "6", "--steps", "8", "--batch", "16", "--val-tiles", "48", "--quiet", "--seed", "1"]


@pytest.fixture(scope="module")
def focus_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("focus")
    assert main(["focus", "--epochs", "3", "--lr", "3e-3", "--no-eval", "--out", str(out)] + TINY) == 0
    return out


def test_focus_run_writes_a_complete_model_dir(focus_run):
    for f in ("model.keras", "history.json", "model_card.json", "checkpoints/last.keras",
              "checkpoints/state.json"):
        assert (focus_run / f).is_file(), f
    hist = json.loads((focus_run / "history.json").read_text())
    assert len(hist["loss"]) == 3
    assert hist["loss"][-1] < hist["loss"][0]          # it learns
    card = json.loads((focus_run / "model_card.json").read_text())
    assert card["input"]["shape"] == [FOCUS_TILE, FOCUS_TILE, 1]
    assert card["input"]["normalisation"] == "device.common.preprocess.normalize_focus_tiles"
    assert card["class_names"] == list(FOCUS_CLASSES)
    assert [o["name"] for o in card["outputs"]] == ["probs", "blur_px"]
    assert card["training"]["seed"] == 1 and card["command"].startswith("focus-train focus")


def test_focus_model_matches_the_contract(focus_run):
    import keras
    m = keras.models.load_model(focus_run / "model.keras", compile=False)
    assert m.name == "focus_net" and m.input.name == "tile"
    assert m.output_names == ["probs", "blur_px"]
    p, b = m.predict(np.zeros((2, FOCUS_TILE, FOCUS_TILE, 1), np.float32), verbose=0)
    assert p.shape == (2, 3) and np.allclose(p.sum(1), 1, atol=1e-5) and b.shape == (2, 1)


def test_resume_continues_the_history(focus_run, tmp_path):
    run = tmp_path / "run"          # a copy: the shared run stays as the other tests expect it
    shutil.copytree(focus_run, run)
    assert main(["focus", "--epochs", "4", "--resume", "--no-eval", "--out", str(run)] + TINY) == 0
    hist = json.loads((run / "history.json").read_text())
    assert len(hist["loss"]) == 4
    assert hist["loss"][:3] == json.loads((focus_run / "history.json").read_text())["loss"]
    assert json.loads((run / "checkpoints/state.json").read_text())["epoch"] == 4


def test_init_warm_starts_from_a_model(focus_run, tmp_path):
    import keras
    out = tmp_path / "warm"
    # A learning rate too small to move a weight: what comes out is what went in.
    assert main(["focus", "--epochs", "1", "--lr", "1e-12", "--no-eval", "--out", str(out),
                 "--init", str(focus_run / "model.keras"), "--sharp-detail-ratio", "0.6"] + TINY) == 0
    src = keras.models.load_model(focus_run / "model.keras", compile=False)
    warm = keras.models.load_model(out / "model.keras", compile=False)
    for a, b in zip(src.trainable_weights, warm.trainable_weights):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-6)
    card = json.loads((out / "model_card.json").read_text())
    assert card["training"]["init"] == str(focus_run / "model.keras")
    assert card["data"]["sharp_detail"]["ratio"] == 0.6


def test_init_of_another_architecture_is_one_line_exit_2(focus_run, tmp_path, capsys):
    code = main(["focus", "--epochs", "1", "--no-eval", "--out", str(tmp_path / "o"), "--width", "2",
                 "--init", str(focus_run / "model.keras")] + TINY)
    err = capsys.readouterr().err
    assert code == 2 and "is not a focus_net of this tile size and width" in err
    # the one line is the error (the split summary before it is progress, not an error)
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("focus-train: error: --init:")


def test_evaluate_writes_report_and_plots(focus_run, tmp_path):
    # an empty Kaggle folder: the report must say the real-photo section was skipped
    assert main(["evaluate", str(focus_run), "--tiles", "60", "--kaggle", str(tmp_path), "--quiet"]) == 0
    rep = focus_run / "report" / "report.md"
    text = rep.read_text()
    pngs = re.findall(r"\]\(([^)]+\.png)\)", text)
    assert "confusion.png" in pngs and "roc.png" in pngs and "learning_curves.png" in pngs
    for p in pngs:
        f = focus_run / "report" / p
        assert f.is_file() and f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
    assert "tenengrad" in text and "variance_of_laplacian" in text and "Skipped" in text
    m = json.loads((focus_run / "model_card.json").read_text())["metrics"]
    assert m["test_tiles"] == 60 and 0 <= m["accuracy_3class"] <= 1
    assert np.array(m["confusion"]).sum() == 60
    # The real sweeps beside the project are judged as the device judges an ROI.
    assert "## Real focus sweeps" in text
    sweeps = m["real_sweeps"]
    assert sweeps["pooled"]["crops"] == sum(r["crops"] for r in sweeps["regions"].values()) == 64
    assert 0 <= sweeps["pooled"]["auc_sharp_prob"] <= 1


def test_defects_run_end_to_end(tmp_path):
    out = tmp_path / "defects"
    assert main(["defects", "--epochs", "3", "--eval-tiles", "40", "--out", str(out)] + TINY) == 0
    hist = json.loads((out / "history.json").read_text())
    assert hist["loss"][-1] < hist["loss"][0]
    card = json.loads((out / "model_card.json").read_text())
    assert card["kinds"] == list(DEFECT_KINDS) and card["input"]["shape"] == [DEFECT_TILE, DEFECT_TILE, 3]
    m = card["metrics"]
    assert set(m["conditions"]) == {"bayer_jpeg90", "rgb_single_pixel"}
    assert 0 <= m["recall"] <= 1 and m["conditions"]["bayer_jpeg90"]["defects"] > 0
    text = (out / "report" / "report.md").read_text()
    for p in re.findall(r"\]\(([^)]+\.png)\)", text):
        assert (out / "report" / p).is_file(), p
    import keras
    mdl = keras.models.load_model(out / "model.keras", compile=False)
    assert mdl.name == "defect_net" and mdl.output_names == ["heatmap"]
    assert mdl.outputs[0].shape[1:] == (DEFECT_TILE, DEFECT_TILE, len(DEFECT_KINDS))
