"""Bad input gets one clear line on stderr and exit status 2, never a traceback."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from train.cli import main

FAST = ["--epochs", "1", "--steps", "1", "--batch", "4", "--val-tiles", "4", "--no-eval", "--quiet"]


def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def test_empty_folder(tmp_path, capsys):
    code, err = _run(capsys, ["focus", "--images", str(tmp_path), "--out", str(tmp_path / "o")] + FAST)
    assert code == 2
    assert "no image files" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_folder(tmp_path, capsys):
    code, err = _run(capsys, ["defects", "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o")] + FAST)
    assert code == 2 and "not a folder" in err


def test_unreadable_image(tmp_path, capsys):
    (tmp_path / "broken.jpg").write_bytes(b"this is not a JPEG at all")
    code, err = _run(capsys, ["focus", "--images", str(tmp_path), "--out", str(tmp_path / "o")] + FAST)
    assert code == 2
    assert "broken.jpg" in err and "not a readable image" in err and "Traceback" not in err


def test_tile_larger_than_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"small{i}.png"), rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    code, err = _run(capsys, ["focus", "--images", str(tmp_path), "--no-builtin", "--dead-leaves", "0",
                              "--out", str(tmp_path / "o")] + FAST)
    assert code == 2
    assert "smaller than the 64-px tile" in err and "Traceback" not in err


def test_bad_numbers_and_unknown_command(tmp_path):
    for argv in (["focus", "--epochs", "0"], ["focus", "--epochs", "many"], ["defects", "--lr", "-1"], ["nope"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2


def test_evaluate_not_a_model_dir(tmp_path, capsys):
    code, err = _run(capsys, ["evaluate", str(tmp_path)])
    assert code == 2 and "not a model dir" in err


def test_resume_without_checkpoint(tmp_path, capsys):
    code, err = _run(capsys, ["defects", "--dead-leaves", "6", "--resume", "--out", str(tmp_path / "o")] + FAST)
    assert code == 2 and "no checkpoint" in err


def test_init_missing_model(tmp_path, capsys):
    code, err = _run(capsys, ["focus", "--dead-leaves", "6", "--init", str(tmp_path / "no.keras"),
                              "--out", str(tmp_path / "o")] + FAST)
    assert code == 2 and "--init: no such model file" in err


def test_console_script_exit_status(tmp_path):
    # the real entry point, as a user runs it
    r = subprocess.run([sys.executable, "-m", "train.cli", "focus", "--images", str(tmp_path)] + FAST,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "no image files" in r.stderr
