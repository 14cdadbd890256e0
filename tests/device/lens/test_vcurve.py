"""The star autofocus: the V-curve fit on known hyperbolas, the search against a known
size curve, and closed loops on the simulated sky (Moffat seeing through an obstructed
pupil, noise, hot pixels, backlash), asserting where the lens ENDS."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from device.config import AutofocusConfig, MotorConfig, SimConfig
from device.config.stars import SkyConfig, StarsConfig
from device.lens.autofocus import Autofocus
from device.lens.motor.sim import SimMotor
from device.lens.search import FAILED, FOCUSED
from device.lens.vcurve import StarSize, fit_vcurve, star_autofocus, vcurve_search
from device.sources.sim import SimCamera
from tests.device.results import result


def hyperbola(x, c=412.0, seeing=1.5, slope=0.075):
    return np.sqrt(seeing ** 2 + (slope * (np.asarray(x, float) - c)) ** 2)


def test_fit_recovers_a_known_hyperbola():
    xs = np.arange(300, 541, 20)
    fit = fit_vcurve(xs, hyperbola(xs))
    assert fit.ok and fit.r2 > 0.999
    assert fit.vertex == pytest.approx(412.0, abs=0.05)
    assert fit.min_size == pytest.approx(1.5, abs=0.01)


def test_fit_with_noisy_sizes_stays_within_a_step():
    rng = np.random.default_rng(3)
    xs = np.arange(320, 501, 20)
    errs = []
    for _ in range(50):
        ys = hyperbola(xs) * (1 + rng.normal(0, 0.05, xs.size))
        fit = fit_vcurve(xs, ys)
        assert fit.ok
        errs.append(abs(fit.vertex - 412.0))
    assert np.median(errs) < 5 and max(errs) < 20          # one step = 20


def test_fit_rejects_one_sided_flat_and_noisy_curves():
    xs = np.arange(0, 200, 20)
    one_sided = fit_vcurve(xs, hyperbola(xs))               # minimum at 412, beyond the samples
    assert not one_sided.ok and "outside" in one_sided.reason
    assert not fit_vcurve(xs, np.full(xs.size, 2.0)).ok
    noise = np.random.default_rng(0).uniform(1, 5, xs.size)
    bad = fit_vcurve(xs, noise)
    assert not bad.ok
    assert not fit_vcurve([1, 2], [3, 4]).ok                 # too few samples
    with_gaps = fit_vcurve([380, 400, 420, 440], [hyperbola(380), math.nan, hyperbola(420),
                                                  hyperbola(440)])
    assert with_gaps.ok and with_gaps.vertex == pytest.approx(412, abs=0.5)


def run_search(size_at, p0, limits=(0, 1000), step=20, **kw):
    """Drive the generator with a known size curve; every sample is consistent."""
    gen = vcurve_search(p0, limits, step=step, **kw)
    req, measured, last_go = next(gen), [], None
    try:
        while True:
            kind, pos = req
            if kind == "measure":
                measured.append(pos)
                req = gen.send((size_at(pos), True))
            else:
                last_go = pos
                req = gen.send(None)
    except StopIteration as stop:
        return stop.value, measured, last_go


@pytest.mark.parametrize("p0", [412, 300, 560, 130, 700])
def test_search_ends_at_the_minimum_from_either_side(p0):
    curve = lambda p: float(np.minimum(hyperbola(p), 18.0))   # donuts stop growing far out
    out, measured, last_go = run_search(curve, p0)
    assert out.state == FOCUSED, out.reason
    assert abs(out.position - 412) <= 5 and last_go == out.position
    below = [p for p in measured if p < 412]
    above = [p for p in measured if p > 412]
    assert len(below) >= 2 and len(above) >= 2               # grown on both sides


def test_no_stars_at_the_start_fails_back_to_the_start():
    out, measured, last_go = run_search(lambda p: math.nan, 400, why_none=lambda: "no stars found")
    assert out.state == FAILED and "no stars found" in out.reason
    assert measured == [400] and last_go == 400


def test_clouds_mid_scan_fail_back_to_the_start():
    curve = lambda p: hyperbola(p) if p < 460 else math.nan
    out, measured, last_go = run_search(curve, 400, why_none=lambda: "clouds: star count fell from 40 to 2")
    assert out.state == FAILED and "clouds" in out.reason
    assert last_go == 400 and out.position == 400


def test_a_minimum_at_the_travel_limit_is_not_focus():
    out, _, last_go = run_search(lambda p: hyperbola(p, c=-60), 100)
    assert out.state == FAILED and last_go == 100


# --- closed loop on the simulated sky ----------------------------------------------------

def sky_rig(best, start, *, seed=0, slack=0, measure="hfr", sky=SkyConfig(stars=30)):
    cam = SimCamera(SimConfig(scene="stars", width=320, height=240, seed=seed,
                              best_position=best, start_position=start, sky=sky))
    mc = MotorConfig(driver="sim")
    motor = SimMotor(cam, backlash=mc.sim_backlash, initial_slack=slack, threaded=False,
                     limits=(0, 1000), speed=mc.sim_speed, acceleration=mc.sim_acceleration,
                     overshoot=mc.backlash_overshoot)
    cfg = StarsConfig()
    size, search = star_autofocus(measure, cfg, default_step=round(cam.depth_of_field))
    af = Autofocus(motor, AutofocusConfig(average_frames=cfg.af_frames), start=True,
                   owns_motor=True, search=search, measure=size)
    return cam, motor, af


def drive(cam, af, frames=400):
    for _ in range(frames):
        f = cam.read()
        af.on_frame(f, result(0.0, frame=f.index, timestamp=f.timestamp))
        if af.state in (FOCUSED, FAILED) and not af.motor.busy:
            return


@pytest.mark.parametrize("best,start,slack,measure", [
    (500.0, 380.0, 0, "hfr"),       # below focus
    (430.0, 560.0, 10, "hfr"),      # above focus, gear play to take up
    (610.0, 612.0, 4, "hfr"),       # already in focus
    (300.0, 420.0, 0, "fwhm"),      # minimising FWHM instead
])
def test_star_autofocus_ends_within_the_depth_of_field(best, start, slack, measure):
    cam, motor, af = sky_rig(best, start, slack=slack, measure=measure)
    drive(cam, af)
    assert af.state == FOCUSED, af.reason
    assert cam.in_focus(), (cam.lens_position, cam.best_position)
    assert "R^2" in af.reason
    af.close()
    assert motor.closed


def test_an_empty_sky_fails_and_returns_to_the_start():
    cam, motor, af = sky_rig(500.0, 400.0, sky=SkyConfig(stars=0))
    start = motor.position
    drive(cam, af)
    assert af.state == FAILED and "no stars found" in af.reason
    assert motor.position == start
    af.close()


def test_star_size_reports_clouds_when_the_starlight_drops():
    clear = SimCamera(SimConfig(scene="stars", width=320, height=240, best_position=500,
                                start_position=500))
    cloudy = SimCamera(SimConfig(scene="stars", width=320, height=240, best_position=500,
                                 start_position=500, sky=SkyConfig(clouds=0.85)))
    size = StarSize("hfr", StarsConfig())
    assert size(clear.read()) == pytest.approx(1.48, rel=0.2)
    assert math.isnan(size(cloudy.read()))
    assert size.why().startswith("clouds: star count fell from ")
    size.reset()
    assert not math.isnan(size(cloudy.read()))   # a new run judges from its own start


def test_run_measure_hfr_focuses_the_simulated_sky_end_to_end(capsys):
    from device.cli import main

    rc = main(["run", "--source", "sim:scene=stars,seed=3,width=320,height=240,best_position=420,"
               "start_position=520", "--motor", "sim", "--autofocus", "--measure", "hfr",
               "--frames", "120", "--stats", "--headless"])
    stats = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert rc == 0
    assert stats["af"]["state"] == "focused" and stats["af"]["in_focus"], stats["af"]
