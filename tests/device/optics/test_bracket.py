"""Focus bracketing on the simulated lens: ``run --motor sim --bracket N``, and the pure
planning helpers."""
from __future__ import annotations

import json

import cv2
import pytest

from device.cli import main
from device.errors import InputError
from device.optics.bracket import plan_positions, step_from_curve

SIM = "sim:width=320,height=240,seed=5"


def _run(tmp_path, capsys, *extra):
    code = main(["run", "--source", SIM, "--motor", "sim", "--headless", "--stats",
                 "--frames", "400", "--capture-dir", str(tmp_path)] + list(extra))
    out = capsys.readouterr().out.strip().splitlines()
    return code, (json.loads(out[-1]) if out else None)


@pytest.mark.parametrize("extra", [[], ["--bracket-step", "15"]])
def test_bracket_spans_the_best_position(tmp_path, capsys, extra):
    code, stats = _run(tmp_path, capsys, "--bracket", "5", *extra)
    assert code == 0
    # The run ended with the bracket, long before --frames.
    assert stats["bracket"]["state"] == "done" and stats["frames"] < 400
    manifests = list(tmp_path.glob("bracket-*.json"))
    assert len(manifests) == 1
    m = json.loads(manifests[0].read_text())
    assert set(m) == {"frames", "best_position", "step"}
    if extra:
        assert m["step"] == 15
    pos = [f["lens_position"] for f in m["frames"]]
    assert len(pos) == 5 and all(b - a == m["step"] for a, b in zip(pos, pos[1:]))
    best = stats["sim"]["best_position"]
    assert pos[0] < best < pos[-1]
    for f in m["frames"]:
        img = cv2.imread(str(tmp_path / f["image"]))
        assert img is not None and img.shape == (240, 320, 3)
        side = json.loads((tmp_path / f["image"]).with_suffix(".json").read_text())
        assert side["lens_position"] == f["lens_position"] and side["trigger"] == "bracket"
    # The middle frame is the sharpest, and the lens went back to focus.
    focus = [f["focus"] for f in m["frames"]]
    assert max(focus) == focus[2]
    assert stats["af"]["position"] == m["best_position"]


def test_bracket_from_here_centres_on_the_lens(tmp_path, capsys):
    code, stats = _run(tmp_path, capsys, "--bracket", "3", "--bracket-from", "here",
                       "--bracket-step", "10", "--source", SIM + ",start_position=400")
    assert code == 0
    m = json.loads(next(tmp_path.glob("bracket-*.json")).read_text())
    assert [f["lens_position"] for f in m["frames"]] == [390, 400, 410]
    assert m["best_position"] == 400 and stats["af"]["runs"] == 0


def test_bracket_without_a_motor_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["run", "--source", SIM, "--headless", "--frames", "3", "--bracket", "3",
                 "--capture-dir", str(tmp_path)])
    # run logs at info on stderr; the error is its one line there, without a traceback.
    err = [l for l in capsys.readouterr().err.splitlines() if "error" in l.lower()]
    assert code == 2 and len(err) == 1 and "--bracket needs a focus motor" in err[0]


def test_plan_is_shifted_into_the_limits_and_ordered_by_approach():
    assert plan_positions(500, 5, 10, (0, 1000)) == [480, 490, 500, 510, 520]
    assert plan_positions(5, 3, 10, (0, 1000)) == [0, 10, 20]
    assert plan_positions(995, 3, 10, (0, 1000), approach=-1) == [1000, 990, 980]
    with pytest.raises(InputError, match="travel"):
        plan_positions(500, 20, 100, (0, 1000))


def test_step_from_the_half_maximum_width():
    curve = {400: 10.0, 450: 60.0, 500: 100.0, 550: 60.0, 600: 10.0}
    # Half maximum (50) at 450 - 50*10/50 = 440 and 560: width 120, a quarter is 30.
    assert step_from_curve(curve) == 30
    assert step_from_curve({450: 60.0, 500: 100.0, 550: 60.0}) is None   # never falls to half


def test_failed_autofocus_takes_no_bracket_and_exits_1(tmp_path, capsys):
    code, stats = _run(tmp_path, capsys, "--bracket", "3", "--source", SIM + ",scene=flat")
    assert code == 1 and stats["af"]["state"] == "failed"
    assert stats["bracket"]["state"] == "failed" and "autofocus failed" in stats["bracket"]["reason"]
    assert stats["frames"] < 400 and not list(tmp_path.glob("*.json"))
