"""``focus-assist stars`` and ``focus-assist sweep --measure hfr|fwhm`` on rendered star
fields saved as 8- and 16-bit PNGs (the sweep's true focus is frame 6 of 13)."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from device.cli import main
from device.config import SimConfig
from device.config.stars import SkyConfig
from device.sources.sim import SimCamera

BEST_FRAME = 6


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sky")
    cam = SimCamera(SimConfig(scene="stars", width=480, height=360, seed=5, best_position=500,
                              start_position=500))
    paths = []
    for i, p in enumerate(range(500 - 20 * BEST_FRAME, 500 + 20 * 7, 20)):
        path = d / f"f{i:02d}.png"
        cv2.imwrite(str(path), cam.render(p))
        paths.append(str(path))
    empty = SimCamera(SimConfig(scene="stars", width=480, height=360, sky=SkyConfig(stars=0)))
    cv2.imwrite(str(d / "empty.png"), empty.render(0))
    cv2.imwrite(str(d / "wide.png"), cv2.imread(paths[BEST_FRAME]).astype(np.uint16) * 257)
    return d, paths


def lines(capsys):
    out = capsys.readouterr()
    return [json.loads(x) for x in out.out.splitlines()], out.err


def test_stars_prints_one_record_per_image_and_writes_the_csv(sweep, capsys, tmp_path):
    d, paths = sweep
    table = tmp_path / "stars.csv"
    rc = main(["stars", "--json", "--stars-csv", str(table), paths[BEST_FRAME], str(d / "wide.png"),
               str(d / "empty.png")])
    recs, err = lines(capsys)
    assert rc == 0 and err == ""
    sharp, wide, empty = recs
    assert set(sharp) == {"path", "width", "height", "stars", "hfr_px", "fwhm_px", "saturated",
                          "background", "noise", "status"}
    assert sharp["stars"] >= 10 and sharp["hfr_px"] == pytest.approx(1.48, rel=0.2)
    assert (sharp["width"], sharp["height"]) == (480, 360)
    assert wide["hfr_px"] == pytest.approx(sharp["hfr_px"], rel=0.02)     # 16-bit alike
    assert wide["background"] == pytest.approx(sharp["background"] * 257, rel=0.02)
    assert empty["status"] == "no stars found" and empty["hfr_px"] is None
    with table.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == sharp["stars"] + wide["stars"] + sharp["saturated"] + wide["saturated"]
    assert {r["path"] for r in rows} == {paths[BEST_FRAME], str(d / "wide.png")}


def test_stars_roi_and_bad_input(sweep, capsys):
    d, paths = sweep
    assert main(["stars", "--json", "--roi", "0,0,240,360", paths[BEST_FRAME]]) == 0
    (rec,), _ = lines(capsys)
    assert rec["width"] == 240
    rc = main(["stars", "--json", str(d / "missing.png"), paths[BEST_FRAME]])
    recs, err = lines(capsys)
    assert rc == 2 and len(recs) == 1
    assert err.count("\n") == 1 and "missing.png: no such file" in err
    assert main(["stars", "--roi", "0,0,900,900", paths[0]]) == 2
    assert "outside" in capsys.readouterr().err


@pytest.mark.parametrize("measure", ["hfr", "fwhm"])
def test_sweep_by_star_size_finds_the_focused_frame(sweep, capsys, measure):
    _, paths = sweep
    assert main(["sweep", "--json", "--measure", measure, *paths]) == 0
    (out,), _ = lines(capsys)
    assert out["measure"] == measure
    assert abs(out["best_index"] - BEST_FRAME) <= 1
    curve = out["curve"]
    assert curve[BEST_FRAME] == min(curve)
    if measure == "hfr":
        assert out["fit"]["ok"] and out["fit"]["r2"] >= 0.8
        assert out["refined_index"] == pytest.approx(BEST_FRAME, abs=0.5)


def test_sweep_without_stars_is_one_clear_error(sweep, capsys):
    d, _ = sweep
    assert main(["sweep", "--measure", "hfr", str(d / "empty.png")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "focus-assist: error: sweep: no stars found in any image"


def test_sweep_default_is_still_the_contrast_curve(sweep, capsys):
    _, paths = sweep
    assert main(["sweep", "--json", *paths[:3]]) == 0
    (out,), _ = lines(capsys)
    assert "fit" not in out and len(out["curve"]) == 3
