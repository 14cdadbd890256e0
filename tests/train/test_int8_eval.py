"""The int8 file through the device's interpreter, shaped for the report's evaluation."""
from __future__ import annotations

import json

import numpy as np

from device.common.preprocess import (FOCUS_TILE, extract_tiles, normalize_focus_tiles, textured_mask,
                                      tile_origins)
from device.scoring.focus_net import FocusScorer
from device.scoring.inference import default_model_path
from train.cli import main
from train.int8_eval import DevicePredictor


def test_the_adapter_gives_the_device_answer_whatever_the_batch(camera_grey):
    tiles = extract_tiles(camera_grey, tile_origins(*camera_grey.shape, FOCUS_TILE), FOCUS_TILE)
    tiles = tiles[textured_mask(tiles)][:20]
    x = normalize_focus_tiles(tiles)
    out = DevicePredictor(default_model_path("focus")).predict(x, batch_size=7)
    probs, blur = FocusScorer.from_path(num_threads=1).predict(x)
    assert out["probs"].shape == (20, 3) and out["blur_px"].shape == (20, 1)
    np.testing.assert_allclose(out["probs"], probs, atol=1e-6)
    np.testing.assert_allclose(out["blur_px"][:, 0], blur, atol=1e-6)
    # A real photograph: its clean textured tiles are mostly read as sharp.
    assert np.mean(np.argmax(out["probs"], 1) == 0) > 0.5


def test_bad_tflite_inputs_are_one_clear_line(tmp_path, capsys):
    code = main(["evaluate", str(tmp_path), "--tflite", str(default_model_path("focus")), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no model_card.json" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "model_card.json").write_text(json.dumps({"kind": "defects"}))
    code = main(["evaluate", str(tmp_path), "--tflite", str(tmp_path / "nope.tflite"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no such file" in err
    code = main(["evaluate", str(tmp_path), "--tflite", str(default_model_path("focus")), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "evaluates focus models" in err and "Traceback" not in err
