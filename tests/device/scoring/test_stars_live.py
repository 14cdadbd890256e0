"""Star mode's per-frame monitor on the simulated sky (known PSF, best focus at 500)."""
from __future__ import annotations

import math

import pytest

from device.config import SimConfig
from device.config.stars import SkyConfig
from device.scoring.stars_live import StarMonitor
from device.sources.sim import SimCamera
from device.sources.sky import true_hfr


def sky(**opts):
    return SimCamera(SimConfig(scene="stars", width=320, height=240, seed=3, fps=0, best_position=500,
                               start_position=400, sky=SkyConfig(**{"stars": 30, **opts})))


def frame_at(cam, p):
    """The frame exposed at ``p`` (a simulated frame lags the lens by one)."""
    cam.lens_position = p
    cam.read()
    return cam.read()


def turn_through_focus(cam, mon, positions):
    for p in positions:
        mon.on_frame(frame_at(cam, p), None)


def test_a_pass_through_focus_holds_the_minimum_and_draws_the_v():
    cam = sky()
    mon = StarMonitor("hfr", lens_position=lambda: cam.exposed_position)
    positions = list(range(400, 620, 20))
    turn_through_focus(cam, mon, positions)
    s = mon.status()
    assert s.status == "ok" and s.count > 5 and s.x_is_lens
    xs = [p[0] for p in s.vcurve]
    hfrs = [p[1] for p in s.vcurve]
    assert xs == positions
    # The held minimum is the smallest star size seen, at (within a step of) best focus.
    assert s.min_hfr_px == pytest.approx(min(hfrs), abs=1e-3)
    assert abs(xs[hfrs.index(min(hfrs))] - 500) <= 20
    assert s.min_hfr_px == pytest.approx(true_hfr(cam.blur_radius(500), cam.cfg.sky), rel=0.2)
    # Now past focus: the current size is well above the held minimum.
    assert s.hfr_px > 2 * s.min_hfr_px
    j = s.to_json()
    assert j["vcurve"][0] == [400.0, hfrs[0]] and j["vcurve_x"] == "lens_position"
    assert set(j) >= {"hfr_px", "fwhm_px", "count", "min_hfr_px", "status", "vcurve"}


def test_reset_forgets_the_minimum_and_the_curve():
    cam = sky()
    mon = StarMonitor("hfr", lens_position=lambda: cam.exposed_position)
    turn_through_focus(cam, mon, [480, 500, 520])
    mon.reset()
    s = mon.status()
    assert math.isnan(s.min_hfr_px) and s.vcurve == ()
    turn_through_focus(cam, mon, [560])
    assert mon.status().min_hfr_px == pytest.approx(mon.status().hfr_px)


def test_an_empty_sky_says_no_stars_found():
    cam = sky(stars=0)
    mon = StarMonitor("hfr")
    mon.on_frame(cam.read(), None)
    s = mon.status()
    assert s.status == "no stars found" and s.count == 0 and math.isnan(s.hfr_px)
    assert s.vcurve == () and not s.x_is_lens and mon.circles() == ()


def test_clouds_are_reported_with_the_star_counts():
    clear = SimCamera(SimConfig(scene="stars", width=320, height=240, fps=0, best_position=500,
                                start_position=500))
    cloudy = SimCamera(SimConfig(scene="stars", width=320, height=240, fps=0, best_position=500,
                                 start_position=500, sky=SkyConfig(clouds=0.85)))
    mon = StarMonitor("fwhm")
    mon.on_frame(clear.read(), None)
    before = mon.status().count
    mon.on_frame(cloudy.read(), None)
    s = mon.status()
    assert s.status.startswith(f"clouds: star count fell from {before} to ")


def test_circles_sit_on_the_true_stars():
    cam = sky()
    mon = StarMonitor("hfr")
    mon.on_frame(frame_at(cam, 500), None)
    circles = mon.circles()
    assert len(circles) == len(mon._last.stars) > 5
    sx, sy = cam._sky.x, cam._sky.y
    near = sum(1 for x, y, r in circles if min(math.hypot(a - x, b - y) for a, b in zip(sx, sy)) < 1.5)
    assert near >= 0.8 * len(circles)
    assert all(4.0 <= r < 10 for _, _, r in circles)
