"""The live optics inspector: passes cut from the loop's tile maps (by hand, by the
autofocus), analysed like ``focus-assist inspect``; sweeps rendered from real photos with a
known tilt (``tilted_sweep``), and the simulated lens with a real autofocus."""
from __future__ import annotations

import numpy as np
import pytest

from device.config import AutofocusConfig, MotorConfig, SimConfig
from device.config.inspect import InspectConfig
from device.errors import InputError
from device.lens.autofocus import Autofocus
from device.lens.motor import open_motor
from device.optics.inspect import even_positions, inspect_curves
from device.optics.live import NO_PASS, LiveInspector, Pass, analyse_pass, regrid
from device.scoring.classic import ClassicScorer
from device.sources.base import Frame
from device.sources.sim import SimCamera
from tests.device.optics.tilted_sweep import render_sweep

skdata = pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")


def play(frames, inspector, positions=None):
    scorer = ClassicScorer()
    for i, g in enumerate(frames):
        f = Frame(grey=g, timestamp=float(i), index=i)
        inspector.on_frame(f, scorer.score(f))


def hand_sweep(tilt_x, tilt_y):
    """A hand turning the ring through focus: out of focus, through, and out again."""
    return render_sweep(skdata.brick(), 25, 12.0, tilt_x=tilt_x, tilt_y=tilt_y, px_per_frame=1.2)


def test_a_hand_pass_over_a_tilted_flat_scene_gives_the_tilt():
    ins = LiveInspector(InspectConfig(enabled=True))
    assert ins.last() == {"result": None, "reason": NO_PASS}
    play(hand_sweep(6.0, -4.0), ins)
    out = ins.last()
    assert out["pass"]["kind"] == "hand" and out["pass"]["samples"] == "frames"
    assert abs(out["tilt"]["x"] - 6.0) < 1.0 and abs(out["tilt"]["y"] + 4.0) < 1.0
    assert out["verdict"] == "tilt" and "tilted about the vertical axis" in out["summary"]
    assert len(out["grid"]) == 3 and len(out["grid"][0]) == 3


def test_a_level_pass_is_not_analysed_until_asked_when_disabled():
    ins = LiveInspector(InspectConfig(enabled=False))
    play(hand_sweep(0.0, 0.0), ins)
    assert ins.last_pass is not None and ins.last()["result"] is None
    assert "not analysed yet" in ins.last()["reason"]
    out = ins.analyse()
    assert out["verdict"] == "level" and abs(out["tilt"]["x"]) < 1 and abs(out["tilt"]["y"]) < 1
    assert ins.last() is out
    assert ins.analyse((2, 4))["grid"].__len__() == 2


def test_uneven_unsorted_positions_are_put_on_an_even_lens_grid():
    # Regions whose focus peaks at known lens positions, sampled as an autofocus samples:
    # a coarse sweep up, then fine steps back down over the peak, one position twice.
    peaks = np.array([[480.0, 500.0, 520.0], [490.0, 510.0, 530.0]])
    pos = [300, 360, 420, 480, 540, 600, 660, 640, 620, 600, 580, 560, 540, 520, 500, 490, 510, 520]
    curves = np.stack([10 + 100 * np.exp(-((p - peaks) / 60.0) ** 2) for p in pos])
    even, grid = even_positions(curves, pos)
    assert np.all(np.diff(grid) > 0) and grid[0] == 300 and grid[-1] == 660
    ins = inspect_curves(even, lens_positions=grid)
    got = np.array(ins.steps.grid, float)
    assert np.all(np.abs(got - peaks) < 6)           # within a tenth of the finest spacing
    assert ins.steps.tilt_x == pytest.approx(40 * 2 / (4 / 3), abs=6)   # 40 steps over 2/3 of the width
    with pytest.raises(InputError):
        even_positions(curves[:2], pos[:2])


def test_regrid_averages_tiles_and_refuses_a_finer_grid():
    maps = np.arange(2 * 6 * 8, dtype=float).reshape(2, 6, 8)
    out = regrid(maps, (3, 4))
    assert out.shape == (2, 3, 4) and out[0, 0, 0] == pytest.approx(maps[0, :2, :2].mean())
    with pytest.raises(InputError, match="finer than"):
        regrid(maps, (8, 8))
    assert "result" not in analyse_pass(Pass("hand", np.stack([m for m in hand_tile_maps()])), (3, 3))


def hand_tile_maps():
    scorer = ClassicScorer()
    for i, g in enumerate(hand_sweep(0.0, 0.0)):
        yield scorer.score(Frame(grey=g, timestamp=0.0, index=i)).tile_map


def test_a_full_autofocus_scan_is_a_pass_in_lens_positions():
    cam = SimCamera(SimConfig(scene="mosaic", seed=5, fps=0))
    motor = open_motor(MotorConfig(driver="sim"), sim_camera=cam)
    af = Autofocus(motor, AutofocusConfig(), start=True, owns_motor=True)
    ins = LiveInspector(InspectConfig(enabled=True), autofocus=af,
                        lens_position=lambda: cam.exposed_position)
    scorer = ClassicScorer()
    try:
        for _ in range(200):
            f = cam.read()
            r = scorer.score(f)
            af.on_frame(f, r)
            ins.on_frame(f, r)
            if ins.last_pass is not None:
                break
        assert af.state == "focused" and ins.last_pass.kind == "autofocus"
        out = ins.last()
        assert out["pass"]["samples"] == "lens positions, evenly resampled"
        lo, hi = out["pass"]["lens_range"]
        assert lo < cam.best_position < hi
        # The simulated lens has no tilt: none is invented, in frames or in steps.
        assert out["verdict"] in ("level", "curvature", "undecided", "depth")
        if out["tilt"]["x"] is not None:
            assert abs(out["tilt"]["x"]) < 1.0 and abs(out["tilt"]["y"]) < 1.0
        assert out["steps"] is not None
    finally:
        af.close()
        cam.close()
