"""Benchmark: focusing on stars (issue 16), four tables in one run.

1. HFR accuracy: star fields rendered by ``sim:scene=stars`` (Moffat seeing FWHM 2.6 px,
   beta 4.765, 35% central obstruction, sky 3% of full scale with shot and read noise,
   linear 8-bit, 60 stars, 4 hot pixels) at 0..4 V-curve steps off focus (one step = one
   depth of field = 20 lens steps = 2 px of pupil radius), against ``true_hfr`` of the very
   PSF rendered. Several seeds per offset.
2. V-curve best frame: 13-frame sweeps (one step apart) whose true focus lies at a random
   sub-frame offset; the hyperbola fit's best frame against the truth's nearest frame.
3. Star autofocus vs the contrast autofocus, on the same simulated lens and sky, the same
   random trials (best focus, start within +-150 steps of it: rough focus with the stars
   visible, as Ekos assumes; gear play 0..12 steps), both through the same ``Autofocus``
   sink (moves backlash-safe, frames exposed while moving dropped). In focus = within the
   depth of field.
4. Cost of ``measure_stars`` on a 1332x990 8-bit frame with 100 stars (median of N calls),
   beside the contrast ``focus_value`` on the same frame.

    python bench/bench_stars.py [--trials 20] [--seeds 5] [--tables 1234] [--compare OLD_STARS_PY]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from device.config import AutofocusConfig, MotorConfig, SimConfig
from device.config.stars import SkyConfig, StarsConfig
from device.lens.autofocus import Autofocus
from device.lens.motor.sim import SimMotor
from device.lens.search import FAILED, FOCUSED
from device.lens.vcurve import fit_vcurve, star_autofocus
from device.loop.result import FrameResult
from device.scoring.measures import focus_value
from device.scoring.stars import measure_stars
from device.sources.sim import SimCamera
from device.sources.sky import true_hfr

STEP = 20
NO_TILES = np.zeros((1, 1), np.float32)


def sky_cam(seed, best, start, size=(640, 480), **sky):
    w, h = size
    return SimCamera(SimConfig(scene="stars", width=w, height=h, seed=seed, best_position=best,
                               start_position=start, sky=SkyConfig(**sky)))


def hfr_accuracy(seeds: int) -> list[dict]:
    rows = []
    for k in range(5):
        errs, counts = [], []
        truth = None
        for seed in range(seeds):
            cam = sky_cam(seed, 500.0, 500.0)
            pos = 500 + k * STEP
            truth = true_hfr(cam.blur_radius(pos), cam.cfg.sky)
            f = measure_stars(cam.render(pos))
            errs.append(f.hfr / truth - 1)
            counts.append(f.count)
        rows.append({"steps_off": k, "true_hfr": truth, "median_err": float(np.median(errs)),
                     "worst_err": float(max(errs, key=abs)), "stars": float(np.median(counts))})
    return rows


def vcurve_frames(trials: int, rng) -> list[dict]:
    rows = []
    for i in range(trials):
        best = 500.0 + rng.uniform(-STEP / 2, STEP / 2)
        cam = sky_cam(100 + i, best, 500.0)
        xs = 500 + STEP * (np.arange(13) - 6)
        sizes = [measure_stars(cam.render(float(x))).hfr for x in xs]
        fit = fit_vcurve(range(13), sizes)
        truth = int(round((best - xs[0]) / STEP))
        got = int(round(fit.vertex)) if fit.ok else int(np.nanargmin(sizes))
        rows.append({"ok": fit.ok, "r2": fit.r2, "frame_err": got - truth})
    return rows


def af_trial(method: str, best: float, start: float, slack: int, seed: int) -> dict:
    cam = sky_cam(seed, best, start)
    mc = MotorConfig(driver="sim")
    motor = SimMotor(cam, backlash=mc.sim_backlash, initial_slack=slack, threaded=False,
                     limits=(0, cam.lens_range), speed=mc.sim_speed,
                     acceleration=mc.sim_acceleration, overshoot=mc.backlash_overshoot)
    if method == "stars":
        cfg = StarsConfig()
        size, search = star_autofocus("hfr", cfg, default_step=STEP)
        af = Autofocus(motor, AutofocusConfig(average_frames=cfg.af_frames), start=True,
                       search=search, measure=size)
    else:
        af = Autofocus(motor, AutofocusConfig(), start=True)
    for _ in range(600):
        f = cam.read()
        af.on_frame(f, FrameResult(frame=f.index, timestamp=f.timestamp, focus=focus_value(f.grey),
                                   measures={}, tile_map=NO_TILES))
        if af.state in (FOCUSED, FAILED) and not motor.busy:
            break
    out = {"method": method, "state": af.state, "frames": af.frames,
           "in_focus": bool(cam.in_focus()), "error": cam.lens_position - cam.best_position}
    af.close()
    cam.close()
    return out


def load_reference(path: str):
    """``measure_stars`` of another version of ``device/scoring/stars.py`` (e.g. from
    ``git show REV:device/scoring/stars.py > old.py``), to time it in the same run."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("stars_reference", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod          # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod.measure_stars


def timing(calls: int, reference=None) -> dict:
    cam = sky_cam(7, 500.0, 500.0, size=(1332, 990), stars=100)
    grey = cam.read().grey
    field = measure_stars(grey)
    out = {}
    fns = [("measure_stars", lambda: measure_stars(grey)), ("focus_value", lambda: focus_value(grey))]
    if reference is not None:
        fns.append(("reference", lambda: reference(grey)))
        out["reference_stars"] = reference(grey).count
    # CPU time beside wall time: on a shared host the wall clock also counts other jobs.
    for name, fn in fns:
        fn()
        ts, cs = [], []
        for _ in range(calls):
            t, c = time.perf_counter(), time.process_time()
            fn()
            ts.append(time.perf_counter() - t)
            cs.append(time.process_time() - c)
        out[name] = 1000 * float(np.median(ts))
        out[name + "_cpu"] = 1000 * float(np.median(cs))
    out["stars_found"] = field.count
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--tables", default="1234", help="which tables to run, e.g. 4")
    ap.add_argument("--compare", metavar="STARS_PY",
                    help="another stars.py whose measure_stars table 4 times beside this one")
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    rng = np.random.default_rng(16)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores shared)")

    if "1" in args.tables:
        print("\n1. HFR vs the true half-flux radius (8-bit, seeing FWHM 2.6 px)")
        print(f"{'steps off':>9} {'true HFR':>9} {'median err':>11} {'worst err':>10} {'stars':>6}")
        for r in hfr_accuracy(args.seeds):
            print(f"{r['steps_off']:>9} {r['true_hfr']:>9.2f} {100 * r['median_err']:>10.1f}% "
                  f"{100 * r['worst_err']:>9.1f}% {r['stars']:>6.0f}")

    if "2" in args.tables:
        rows = vcurve_frames(args.trials, rng)
        errs = [abs(r["frame_err"]) for r in rows]
        print(f"\n2. V-curve best frame, {len(rows)} sweeps of 13 frames: fit ok "
              f"{sum(r['ok'] for r in rows)}/{len(rows)}, median R^2 "
              f"{np.median([r['r2'] for r in rows]):.3f}, |frame error| <= 1 in "
              f"{sum(e <= 1 for e in errs)}/{len(rows)} (max {max(errs)})")

    if "3" in args.tables:
        trials = [(rng.uniform(200, 800), rng.uniform(-150, 150), int(rng.integers(0, 13)), i)
                  for i in range(args.trials)]
        print(f"\n3. Autofocus on the simulated sky, {args.trials} random starts (same trials)")
        print(f"{'method':>8} {'in focus':>9} {'focused':>8} {'median frames':>14} {'max frames':>11} "
              f"{'median |err|':>13}")
        res = {}
        for method in ("stars", "contrast"):
            rs = [af_trial(method, b, b + d, s, i) for b, d, s, i in trials]
            res[method] = rs
            print(f"{method:>8} {sum(r['in_focus'] for r in rs):>5}/{len(rs):<3} "
                  f"{sum(r['state'] == FOCUSED for r in rs):>5}/{len(rs):<2} "
                  f"{np.median([r['frames'] for r in rs]):>14.0f} {max(r['frames'] for r in rs):>11} "
                  f"{np.median([abs(r['error']) for r in rs]):>13.1f}")
        ratio = (np.median([r["frames"] for r in res["stars"]])
                 / np.median([r["frames"] for r in res["contrast"]]))
        print(f"   frames, stars / contrast: {ratio:.2f}x")

    if "4" in args.tables:
        t = timing(args.calls, load_reference(args.compare) if args.compare else None)
        print(f"\n4. Cost on 1332x990 8-bit, {t['stars_found']} stars measured (median of {args.calls})")
        print(f"   wall: measure_stars {t['measure_stars']:.1f} ms, focus_value {t['focus_value']:.1f} ms "
              f"({t['measure_stars'] / t['focus_value']:.2f}x)")
        print(f"   CPU:  measure_stars {t['measure_stars_cpu']:.1f} ms, focus_value "
              f"{t['focus_value_cpu']:.1f} ms ({t['measure_stars_cpu'] / t['focus_value_cpu']:.2f}x); "
              f"load average now {os.getloadavg()[0]:.2f}")
        if "reference" in t:
            print(f"   {args.compare} ({t['reference_stars']} stars): wall {t['reference']:.1f} ms, "
                  f"CPU {t['reference_cpu']:.1f} ms; this one is {t['reference'] / t['measure_stars']:.2f}x "
                  f"faster (wall), {t['reference_cpu'] / t['measure_stars_cpu']:.2f}x (CPU)")


if __name__ == "__main__":
    main()
