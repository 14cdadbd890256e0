"""The optics inspector on sweeps rendered from real photos with a known focal surface
(``tilted_sweep``), and on the real pi_board macro sweep (a 3D scene, not a tilt)."""
from __future__ import annotations

import numpy as np
import pytest

from device.errors import InputError
from device.optics.inspect import (UNDECIDED_EDGE, UNDECIDED_FLAT, best_positions, fit_surface,
                                   inspect_sweep, parse_grid, to_steps)

from tests.device.optics.tilted_sweep import render_sweep

skdata = pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")

FRAMES, CENTRE = 21, 10.0


@pytest.mark.parametrize("photo, tilt_x, tilt_y", [("brick", 6.0, -4.0), ("gravel", -3.0, 5.0),
                                                   ("grass", 4.0, 3.0)])
def test_recovers_a_known_tilt_within_one_frame(photo, tilt_x, tilt_y):
    frames = render_sweep(getattr(skdata, photo)(), FRAMES, CENTRE, tilt_x=tilt_x, tilt_y=tilt_y)
    ins = inspect_sweep(frames, (3, 3))
    assert abs(ins.fit.tilt_x - tilt_x) < 1.0
    assert abs(ins.fit.tilt_y - tilt_y) < 1.0
    assert ins.verdict == "tilt" and not ins.undecided
    assert ins.fit.fit_rms < 0.5
    assert "tilted about the vertical axis" in ins.summary
    assert "tilted about the horizontal axis" in ins.summary


@pytest.mark.parametrize("photo", ["brick", "gravel"])
def test_reports_no_tilt_when_there_is_none(photo):
    ins = inspect_sweep(render_sweep(getattr(skdata, photo)(), FRAMES, CENTRE), (3, 3))
    assert abs(ins.fit.tilt_x) < 1.0 and abs(ins.fit.tilt_y) < 1.0
    assert abs(ins.fit.curvature) < 1.0
    assert ins.verdict == "level"
    assert ins.summary.startswith("No measurable tilt")
    # Best focus of every region at the rendered centre frame.
    grid = np.array(ins.fit.grid, float)
    assert np.all(np.abs(grid - CENTRE) < 0.5)


def test_left_side_first_is_named():
    ins = inspect_sweep(render_sweep(skdata.brick(), FRAMES, CENTRE, tilt_x=5.0), (3, 3))
    assert ins.summary.startswith("The left side focuses") and abs(ins.fit.tilt_y) < 1.0


def test_field_curvature_is_a_bowl_not_a_tilt():
    ins = inspect_sweep(render_sweep(skdata.gravel(), FRAMES, CENTRE, bowl=4.0), (3, 3))
    assert abs(ins.fit.curvature - 4.0) < 1.0
    assert abs(ins.fit.tilt_x) < 1.0 and abs(ins.fit.tilt_y) < 1.0
    assert ins.verdict == "curvature" and "centre focuses" in ins.summary


def test_smooth_regions_are_undecided_not_guessed():
    photo = skdata.brick().copy()
    # The left column of regions (and a margin past it, so no brick edge blurs into it): a
    # featureless wall.
    photo[:, : photo.shape[1] * 2 // 5] = 128
    ins = inspect_sweep(render_sweep(photo, FRAMES, CENTRE, tilt_y=4.0), (3, 3))
    grid = ins.fit.grid
    assert [grid[r][0] for r in range(3)] == [None, None, None]
    assert {(u.row, u.col, u.reason) for u in ins.undecided} == {(r, 0, UNDECIDED_FLAT) for r in range(3)}
    assert abs(ins.fit.tilt_y - 4.0) < 1.0
    assert "r0c0" in ins.summary


def test_focus_beyond_the_sweep_is_undecided():
    # Region columns focus at frames 2, 6 and 10 (from 8 to 12 across the right one); the
    # sweep ends at 10.
    frames = render_sweep(skdata.brick(), 11, 6.0, tilt_x=12.0)
    _, undecided = best_positions(inspect_sweep(frames, (3, 3)).curves)
    assert {(u.col, u.reason) for u in undecided} == {(2, UNDECIDED_EDGE)}


def test_fit_on_an_exact_plane_and_bowl():
    xs = (np.arange(4) + 0.5) / 4 * 2 - 1
    xx, yy = np.meshgrid(xs, xs)
    fit = fit_surface(5 + 1.5 * xx - 2.0 * yy + 0.75 * (xx ** 2 + yy ** 2))
    assert (fit.tilt_x, fit.tilt_y, fit.curvature, fit.fit_rms) == (3.0, -4.0, -1.5, 0.0)
    assert fit_surface(np.array([[1.0, np.nan], [np.nan, 2.0]])).fit_rms is None


def test_steps_follow_the_lens_positions():
    best = np.array([[1.5, np.nan, 3.0]])
    out = to_steps(best, [100, 110, 130, 160])
    assert out[0, 0] == 120 and np.isnan(out[0, 1]) and out[0, 2] == 160


def test_bad_sweeps_are_input_errors():
    photo = skdata.brick()
    with pytest.raises(InputError, match="at least 3 frames"):
        inspect_sweep([photo, photo], (3, 3))
    with pytest.raises(InputError, match="one size"):
        inspect_sweep([photo, photo, photo[:-2]], (3, 3))
    with pytest.raises(InputError, match="no region"):
        inspect_sweep([np.full((120, 160), 90, np.uint8)] * 5, (3, 3))
    for bad in ("3", "0x3", "1x2", "axb", "17x2"):
        with pytest.raises(InputError):
            parse_grid(bad)
    assert parse_grid("4X6") == (4, 6)


def test_pi_board_macro_is_depth_not_tilt():
    from tests.conftest import shared_data
    from device.common.preprocess import to_grey
    from device.sources.files import read_image

    paths = sorted(shared_data("focus_sweeps/pi_board_macro").glob("*.jpg"))
    assert len(paths) == 49
    # 4 rows of 270 px: the half-frame join at row 540 is a region border.
    greys = [to_grey(read_image(p)) for p in paths]
    # Every frame, and every second frame (half the frame units): depth both times.
    for sweep in (greys, greys[::2]):
        ins = inspect_sweep(sweep, (4, 4))
        assert ins.verdict == "depth", ins.summary
        assert "depth in the scene, not a tilt" in ins.summary
        # The heatsink (the two middle columns) stands nearer than the board around it.
        grid = np.array(ins.fit.grid, float)
        assert grid[1:3, 1:3].mean() > grid[:, [0, 3]].mean() + 0.25
