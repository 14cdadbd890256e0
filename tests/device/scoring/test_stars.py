"""Star measures on rendered star fields whose PSF is known (``device.sources.sky``):
Moffat seeing through the telescope's pupil, sky shot and read noise, 8-bit frames."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from device.config import SimConfig
from device.config.stars import SkyConfig, StarsConfig
from device.scoring.stars import ALL_SATURATED, NO_STARS, measure_stars
from device.sources.sim import open_sim
from device.sources.sky import moffat_hfr, moffat_stamp, pupil_kernel, true_hfr

BEST = 500


def sky_camera(**opts):
    base = {"scene": "stars", "best_position": str(BEST), "start_position": str(BEST)}
    base.update({k: str(v) for k, v in opts.items()})
    return open_sim(base, SimConfig())


def matched(field, cam, tol=1.5):
    """How many detections sit within ``tol`` px of a true star."""
    sx, sy = cam._sky.x, cam._sky.y
    return sum(1 for s in field.stars if np.min(np.hypot(sx - s.x, sy - s.y)) < tol)


def test_moffat_half_flux_radius_matches_its_closed_form():
    st = moffat_stamp(2.6, 4.765, 0.0, 0.0, 40)
    yy, xx = np.mgrid[-40:41, -40:41]
    r = np.hypot(xx, yy).ravel()
    order = np.argsort(r)
    cum = np.cumsum(st.ravel()[order])
    assert cum[-1] == pytest.approx(1.0, abs=0.01)
    assert r[order][np.searchsorted(cum, 0.5)] == pytest.approx(moffat_hfr(2.6, 4.765), abs=0.5)


@pytest.mark.parametrize("steps_off", [0, 40, 80])   # 80 = 4 V-curve steps of one depth of field
def test_hfr_within_20_percent_of_the_true_half_flux_radius(steps_off):
    cam = sky_camera()
    pos = BEST + steps_off
    truth = true_hfr(cam.blur_radius(pos), cam.cfg.sky)
    field = measure_stars(cam.render(pos))
    assert field.status == "ok" and field.count >= 20
    assert field.hfr == pytest.approx(truth, rel=0.2)
    # What it finds are stars (a few close pairs still slip through as one).
    assert matched(field, cam) >= 0.8 * len(field.stars)


def test_star_size_grows_monotonically_with_defocus():
    cam = sky_camera()
    hfr = [measure_stars(cam.render(BEST + d)).hfr for d in (0, 30, 60, 90, 120)]
    fwhm = [measure_stars(cam.render(BEST + d)).fwhm for d in (0, 30, 60, 90, 120)]
    assert all(b > a for a, b in zip(hfr, hfr[1:])), hfr
    assert all(b > a for a, b in zip(fwhm, fwhm[1:])), fwhm


def test_fwhm_in_focus_near_the_seeing():
    field = measure_stars(sky_camera().render(BEST))
    assert field.fwhm == pytest.approx(2.6, rel=0.25)


def test_defocused_donuts_are_found_where_the_stars_are():
    cam = sky_camera(obstruction=0.45, stars=25, min_peak=0.2)
    field = measure_stars(cam.render(BEST + 120))        # 12 px pupil with a 5 px hole
    k = pupil_kernel(cam.blur_radius(BEST + 120), 0.45)
    assert k[k.shape[0] // 2, k.shape[1] // 2] == 0       # the PSF really is a donut
    assert field.count >= 6
    # Every isolated, bright-enough true star is found, at its place (pairs closer than a
    # donut's diameter merge and are judged elsewhere).
    sx, sy, flux = cam._sky.x, cam._sky.y, cam._sky.flux
    found = np.array([[s.x, s.y] for s in field.stars])
    judged = hits = 0
    for i in range(len(sx)):
        others = np.hypot(sx - sx[i], sy - sy[i])
        if np.sort(others)[1] < 40 or not (20 < sx[i] < 620 and 20 < sy[i] < 460):
            continue
        if flux[i] < np.median(flux):
            continue
        judged += 1
        hits += np.min(np.hypot(found[:, 0] - sx[i], found[:, 1] - sy[i])) < 2.0
    assert judged >= 5 and hits == judged
    assert field.hfr == pytest.approx(true_hfr(cam.blur_radius(BEST + 120), cam.cfg.sky), rel=0.2)


def test_hot_pixels_are_not_stars():
    cam = sky_camera(hot_pixels=6, stars=10)
    field = measure_stars(cam.render(BEST))
    hot = [(d["x"], d["y"]) for d in cam.defects if d["kind"] == "hot"]
    assert len(hot) == 10                                # 6 asked + the sky's own 4
    assert field.rejected_hot >= 8
    for s in field.stars:
        assert min(math.hypot(s.x - x, s.y - y) for x, y in hot) > 2


def test_16_bit_and_colour_frames_measure_like_8_bit_grey():
    frame = sky_camera().render(BEST + 40)
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    ref = measure_stars(grey)
    wide = measure_stars(grey.astype(np.uint16) * 257)
    assert wide.count == ref.count
    assert wide.hfr == pytest.approx(ref.hfr, rel=0.02)
    assert wide.background == pytest.approx(ref.background * 257, rel=0.02)
    colour = measure_stars(frame)
    assert colour.hfr == pytest.approx(ref.hfr, rel=0.02)


def test_saturated_stars_are_counted_and_kept_out_of_the_median():
    cam = sky_camera(min_peak=2.0, max_peak=4.0, stars=20)   # every star clips at full scale
    field = measure_stars(cam.render(BEST))
    assert field.saturated >= 10 and field.count == 0
    assert field.status == ALL_SATURATED and math.isnan(field.hfr)


def test_an_empty_sky_reports_no_stars():
    field = measure_stars(sky_camera(stars=0, hot_pixels=3).render(BEST))
    assert field.status == NO_STARS and field.count == 0 and math.isnan(field.hfr)
    assert field.background == pytest.approx(0.03 * 255, abs=1.0)
    assert 1.5 < field.noise < 5


def test_stars_cut_by_the_frame_edge_are_rejected():
    canvas = np.full((120, 200), 10.0, np.float32)
    st = moffat_stamp(2.6, 4.765, 0.0, 0.0, 12)
    canvas[40:65, 100:125] += 2000 * st                      # centred at x = 112: whole
    canvas[50:75, 28:53] += 2000 * st                        # centred at x = 40: cut below
    img = canvas[:, 38:]                                     # ...so it sits at x = 2
    rng = np.random.default_rng(0)
    field = measure_stars(np.clip(img + rng.normal(0, 1, img.shape), 0, 255).astype(np.uint8))
    assert field.count == 1 and field.rejected_edge == 1
    assert field.stars[0].x == pytest.approx(112 - 38, abs=0.3)
    assert field.stars[0].y == pytest.approx(52, abs=0.3)


def test_roi_restricts_and_offsets():
    cam = sky_camera()
    frame = cam.render(BEST)
    whole = measure_stars(frame)
    part = measure_stars(frame, roi=(320, 0, 320, 480))
    assert 0 < part.count < whole.count
    assert all(s.x >= 320 for s in part.stars)
    assert part.width == 320


def test_thresholds_come_from_the_config():
    frame = sky_camera().render(BEST)
    faint = min(s.flux for s in measure_stars(frame).stars)
    strict = measure_stars(frame, cfg=StarsConfig(k_sigma=20))
    assert min(s.flux for s in strict.stars) > 2 * faint
