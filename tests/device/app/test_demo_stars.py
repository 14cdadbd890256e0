"""The demo's star phase: the star autofocus replayed on the simulated sky and its V-curve."""
from __future__ import annotations

import numpy as np

from device.app import demo_pictures as dp

SKY = "sim:scene=stars,seed=31,best_position=520,start_position=420,fps=0"


def test_the_star_replay_focuses_and_samples_both_sides_of_focus():
    points, state, best, depth = dp.star_replay(SKY, 60)
    assert state == "focused" and best == 520
    xs = np.array([p[0] for p in points])
    hfr = np.array([p[1] for p in points])
    assert xs.min() < best - depth and xs.max() > best + depth       # a V, not one side
    assert abs(xs[-1] - best) <= depth / 2                           # it ends in focus
    assert hfr[-1] < 0.5 * hfr[0]                                    # stars shrank


def _columns(img, colour, tol=40):
    diff = np.abs(img.astype(int) - np.array(colour)).sum(axis=2) < tol
    return set(np.nonzero(diff.sum(axis=0) > 0.5 * img.shape[0])[0].tolist())


def test_the_vcurve_plot_draws_the_truth_where_it_lies():
    pts = [(float(x), float(np.sqrt(1.5 ** 2 + 0.004 * (x - 500) ** 2))) for x in range(400, 601, 20)]
    img = dp.vcurve_plot(pts, best=500.0)
    green = _columns(img, dp.GREEN)
    assert green
    # x axis: 400..600 padded by 4% each side, plotted over 900 - 62 - 14 px from x = 62.
    lo, hi = 400 - 0.04 * 201, 600 + 0.04 * 201
    expect = 62 + (900 - 62 - 14) * (500 - lo) / (hi - lo)
    assert all(abs(c - expect) <= 2 for c in green)
    assert not _columns(dp.vcurve_plot(pts), dp.GREEN)
