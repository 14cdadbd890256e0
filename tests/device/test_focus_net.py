"""The shipped focus net through FocusScorer: golden labels on real photos, aggregation, JSON."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import load_config
from device.focus_net import (UNSCORED, CnnScorer, FocusScorer, certainty, scorer_from_config,
                              working_scale)
from device.optics import disc_psf, line_psf
from device.preprocess import FOCUS_CLASSES, to_grey
from device.scenes import load_photo

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
KAGGLE = SHARED / "kaggle_blur_samples"
PCB = SHARED / "pcb_focus_sweep"
SWITCH_TOP = (750, 500, 550, 500)


@pytest.fixture(scope="module")
def scorer():
    return FocusScorer.from_path(num_threads=1)


def _photo(name: str, size=(640, 480)) -> np.ndarray:
    g = to_grey(load_photo(name))
    # Crop to the working aspect, then resample to the lores size.
    h, w = g.shape
    ch = min(h, int(w * size[1] / size[0]))
    g = g[(h - ch) // 2:(h - ch) // 2 + ch]
    return cv2.resize(g, size, interpolation=cv2.INTER_AREA)


def _blur(grey: np.ndarray, psf: np.ndarray) -> np.ndarray:
    return cv2.filter2D(grey.astype(np.float32), -1, psf / psf.sum(),
                        borderType=cv2.BORDER_REFLECT).clip(0, 255).astype(np.uint8)


# --- pure parts ------------------------------------------------------------------------------

def test_certainty_is_one_minus_normalised_entropy():
    p = np.array([[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]], np.float32)
    c = certainty(p)
    assert c[0] == pytest.approx(1.0, abs=1e-4)
    assert c[1] == pytest.approx(0.0, abs=1e-4)
    assert c[2] == pytest.approx(1 - math.log(2) / math.log(3), abs=1e-4)


def test_working_scale():
    assert working_scale((1536, 2048)) == pytest.approx(0.3125)
    assert working_scale((480, 640)) == 1.0
    assert working_scale((2048, 1536)) == pytest.approx(0.3125)     # portrait
    assert working_scale((240, 320)) == 1.0                          # never upsampled


# --- golden labels: scikit-image photos -------------------------------------------------------

@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee", "chelsea"])
def test_clean_photos_are_sharp_and_blurred_ones_are_not(scorer, name):
    g = _photo(name)
    sharp = scorer.analyse(g)
    defocus = scorer.analyse(_blur(g, disc_psf(4.0)))
    motion = scorer.analyse(_blur(g, line_psf(14.0, 30.0)))
    assert sharp["label"] == "sharp", sharp
    assert defocus["label"] == "defocus", defocus
    assert motion["label"] in ("motion", "defocus") and motion["sharp_prob"] < 0.5, motion
    assert sharp["sharp_prob"] > 0.5 > defocus["sharp_prob"]
    # Blur size grows with the blur (in the input's pixels).
    assert sharp["blur_px"] < defocus["blur_px"]


def test_real_motion_blur_photo_is_not_sharp(scorer):
    r = scorer.analyse(to_grey(load_photo("clock")))   # a real camera-shake photograph
    assert r["label"] != "sharp", r


def test_sharp_subject_on_soft_background_is_sharp(scorer):
    g = _photo("astronaut")
    soft = _blur(g, disc_psf(5.0))
    composite = soft.copy()
    composite[140:340, 220:420] = g[140:340, 220:420]      # a sharp subject, ~13% of the frame
    r = scorer.analyse(composite)
    assert r["label"] == "sharp", r
    assert scorer.analyse(soft)["label"] != "sharp"
    # The heat map locates the subject: its tiles are the sharpest.
    m = r["cnn_map"]
    assert m.shape == (7, 10)
    inside = m[3:5, 4:6]
    outside = np.concatenate([m[:, :2].ravel(), m[:, -2:].ravel()])
    assert inside.min() > outside[outside != UNSCORED].max()


def test_flat_frame_has_no_verdict(scorer):
    r = scorer.analyse(np.full((480, 640), 128, np.uint8))
    assert r["label"] == "flat" and r["sharp_prob"] == 0.0 and r["cnn_tiles"] == 0
    assert (r["cnn_map"] == UNSCORED).all()


def test_roi_picks_the_subject(scorer):
    g = _photo("astronaut")
    half = g.copy()
    half[:, 320:] = _blur(g, disc_psf(5.0))[:, 320:]
    left = scorer.analyse(half, roi=(40, 100, 240, 240))
    right = scorer.analyse(half, roi=(360, 100, 240, 240))
    assert left["label"] == "sharp" and right["label"] == "defocus", (left, right)


# --- golden labels: real camera photos beside the checkout -------------------------------------

def _need(folder: Path):
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: the shared real-photo set is not beside the checkout")


def test_kaggle_samples_sharp_vs_blurred(scorer):
    _need(KAGGLE)
    paths = sorted(KAGGLE.glob("*.[jJ][pP][gG]"))
    assert len(paths) == 9
    wrong = []
    for p in paths:
        r = scorer.analyse(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE))
        truth_sharp = p.stem.endswith("_S")
        if (r["label"] == "sharp") != truth_sharp:
            wrong.append((p.name, r["label"], r["sharp_prob"]))
    assert not wrong


def test_pcb_sweep_switch_top(scorer):
    _need(PCB)
    labels = {}
    for i in (0, 1, 2, 5, 6, 7):
        g = cv2.imread(str(PCB / f"pcb_{i:03d}.JPG"), cv2.IMREAD_GRAYSCALE)
        labels[i] = scorer.analyse(g, SWITCH_TOP)["label"]
    assert all(labels[i] == "sharp" for i in (5, 6, 7)), labels
    assert all(labels[i] != "sharp" for i in (0, 1, 2)), labels


# --- the live loop scorer and the score command ----------------------------------------------

def test_loop_scorer_merges_classic_and_cnn():
    from device.scoring import ClassicScorer
    from device.sources.base import Frame

    cfg = load_config(overrides={"models": {"num_threads": 1}})
    s = scorer_from_config(cfg, ClassicScorer(cfg.scoring))
    assert isinstance(s, CnnScorer)
    r = s.score(Frame(grey=_photo("camera"), timestamp=0.0, index=7))
    assert {"focus", "measures", "tile_map", "label", "sharp_prob", "probs", "blur_px",
            "cnn_map"} <= set(r)
    assert r["frame"] == 7 and r["label"] == "sharp"
    off = load_config(overrides={"models": {"enable_focus": False}})
    assert not isinstance(scorer_from_config(off, ClassicScorer(off.scoring)), CnnScorer)


def test_score_json_contract(tmp_path):
    img = tmp_path / "coffee.png"
    cv2.imwrite(str(img), load_photo("coffee"))
    blurred = tmp_path / "coffee_blurred.png"
    cv2.imwrite(str(blurred), cv2.GaussianBlur(load_photo("coffee"), (0, 0), 4))
    p = subprocess.run([sys.executable, "-m", "device", "score", "--json", str(img), str(blurred)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(img), str(blurred)]
    for r in rows:
        assert r["label"] in FOCUS_CLASSES
        assert set(r["probs"]) == {"sharp", "defocus", "motion"}
        assert sum(r["probs"].values()) == pytest.approx(1.0, abs=1e-3)
        assert 0.0 <= r["sharp_prob"] <= 1.0 and r["sharp_prob"] == r["probs"]["sharp"]
        assert isinstance(r["blur_px"], float) and r["blur_px"] >= 0
        assert isinstance(r["focus"], float)          # the classic fields stay
    assert rows[0]["label"] == "sharp" and rows[1]["label"] != "sharp"


@pytest.mark.parametrize("content, expect", [
    (None, "missing.tflite: model file not found"),
    (b"\0" * 100, "missing.tflite: not a TFLite model"),
])
def test_run_with_a_bad_focus_model_is_one_line_exit_2(tmp_path, content, expect):
    bad = tmp_path / "missing.tflite"
    if content is not None:
        bad.write_bytes(content)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[models]\nfocus = "{bad}"\n')
    p = subprocess.run([sys.executable, "-m", "device", "run", "--source", "sim", "--frames", "1",
                        "--headless", "--config", str(cfg)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and expect in errors[0], p.stderr
    assert "Traceback" not in p.stderr
