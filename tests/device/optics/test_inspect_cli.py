"""``focus-assist inspect``: the JSON it prints, the plot, lens positions from sidecars, and
one line with exit 2 for bad input."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from device.cli import main

from tests.device.optics.tilted_sweep import render_sweep

skdata = pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")


def _write_sweep(folder, frames, positions=None) -> list[str]:
    paths = []
    for i, f in enumerate(frames):
        p = folder / f"sweep_{i:02d}.png"
        cv2.imwrite(str(p), f)
        if positions is not None:
            (folder / f"sweep_{i:02d}.json").write_text(json.dumps({"lens_position": positions[i]}))
        paths.append(str(p))
    return paths


@pytest.fixture(scope="module")
def tilted():
    return render_sweep(skdata.gravel(), 15, 7.0, tilt_x=4.0)


def test_json_plot_and_steps(tmp_path, tilted, capsys):
    positions = [300 + 20 * i for i in range(len(tilted))]
    paths = _write_sweep(tmp_path, tilted, positions)
    plot = tmp_path / "map.png"
    assert main(["inspect", "--json", "--plot", str(plot)] + paths) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"grid", "tilt", "curvature", "fit_rms", "summary", "undecided", "steps"} <= set(out)
    assert len(out["grid"]) == 3 and all(len(r) == 3 for r in out["grid"])
    assert abs(out["tilt"]["x"] - 4.0) < 1.0 and abs(out["tilt"]["y"]) < 1.0
    # 20 steps a frame: the same tilt in motor steps.
    assert abs(out["steps"]["tilt"]["x"] - 20 * out["tilt"]["x"]) < 1.0
    assert abs(out["steps"]["grid"][1][1] - (300 + 20 * out["grid"][1][1])) < 1.0
    img = cv2.imread(str(plot))
    assert img is not None and img.shape[1] == 720


def test_grid_option_and_words(tmp_path, tilted, capsys, monkeypatch):
    paths = _write_sweep(tmp_path, tilted)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert main(["inspect", "--grid", "2x4"] + paths) == 0
    text = capsys.readouterr().out
    assert text.startswith("The left side focuses") and "vertical axis" in text


@pytest.mark.parametrize("case, needle", [
    ("two", "at least 3 frames"), ("sizes", "one size"), ("blank", "no region"),
    ("missing", "no such file"), ("grid", "ROWSxCOLS"), ("plot", ".png or .jpg")])
def test_bad_input_is_one_line_and_exit_2(tmp_path, tilted, capsys, case, needle):
    paths = _write_sweep(tmp_path, tilted[:5])
    argv = ["inspect"] + paths
    if case == "two":
        argv = ["inspect"] + paths[:2]
    elif case == "sizes":
        cv2.imwrite(paths[2], tilted[2][:-4])
    elif case == "blank":
        for p in paths:
            cv2.imwrite(p, np.full((120, 160), 100, np.uint8))
    elif case == "missing":
        argv.append(str(tmp_path / "nope.png"))
    elif case == "grid":
        argv = ["inspect", "--grid", "3by3"] + paths
    elif case == "plot":
        argv = ["inspect", "--plot", str(tmp_path / "map.gif")] + paths
    try:
        code = main(argv)
    except SystemExit as exc:      # argparse rejects --grid itself
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err

