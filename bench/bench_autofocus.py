"""Benchmark: frames to focus of our AF vs a full-range sweep vs a libcamera-style scan.

All three run side by side in one run, on the same random trials: a real photograph
(scikit-image's bundled photos or the 4-photo mosaic) rendered by the simulated lens with
shot/read noise, focus breathing, a one-frame statistics lag and the sim motor's gear play
(12 steps, random initial state), from a random start position to a random best focus.
Each strategy runs through the same ``Autofocus`` sink, so the frame accounting is
identical: frames exposed while the lens moves are dropped, then ``settle_frames``.

* ours: ``device.lens.autofocus.contrast_search`` with the default ``[autofocus]`` config
  (a sweep measured on every frame, creeping at fine steps near the peak, or going
  straight to the V through its coarse bracket when it crossed the peak moving up).
* stepped: the same search with ``sweep = false`` (coarse steps, each stopped, settled and
  measured; the default before the sweep).
* sweep: every 1/50 of the range (one depth of field) from the low end, 1 settle frame,
  then the parabola peak of the sweep (``refine_peak``, as ``focus-assist sweep`` does).
* libcamera: scan from the low end in steps of 1/12 of the range, 5 frames per step,
  stop below 0.75 of the best, parabola through the best and its neighbours, a fine pass
  of 3 samples at a quarter step, parabola again (its af.cpp, in motor steps).

Both baselines get our backlash-safe moves, so the comparison is about the search.

``--threaded``: the motor runs on its own thread, as a stepdir or ULN2003 motor on a Pi,
and the camera is paced at 30 fps in wall time (so the machine's load matters; use fewer
trials and ``--jobs 1``). ``ours_nohistory`` is ours without the motor's position history
(each sweep frame's lens position known only to a frame), for a side-by-side run:
``--threaded --methods ours,ours_nohistory``.
Success = the lens ends within the depth of field of the hidden best position. A second
table gives each method's mean frames per phase (``Autofocus.phase_frames``); check a
change on a second trial set too (``--seed 7``), not only the default seed.

    python bench/bench_autofocus.py [--trials 100] [--jobs 2] [--size 256x192] [--threaded]
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import time

import numpy as np

from device.lens.autofocus import Autofocus
from device.lens.search import FAILED, FOCUSED, Outcome, fit_parabola
from device.config import AutofocusConfig, MotorConfig, SimConfig
from device.scoring.measures import focus_value, refine_peak
from device.lens.motor.sim import SimMotor
from device.loop.result import FrameResult
from device.common.scenes import PHOTO_NAMES
from device.sources.sim import SimCamera

FPS = 30.0
NO_TILES = np.zeros((1, 1), np.float32)   # the AF reads result.focus alone
METHODS = ("ours", "stepped", "sweep", "libcamera")
ALL_METHODS = METHODS + ("ours_nohistory",)   # the last only when asked for


# --- the two baselines, in the search protocol of device.lens.autofocus.contrast_search ----------

def full_sweep(p0, limits, coarse, fine, first):
    lo, hi = limits
    step = max(1, (hi - lo) // 50)
    positions = list(range(lo, hi + 1, step))
    if positions[-1] != hi:
        positions.append(hi)
    values = []
    for p in positions:
        v, _ = yield ("measure", p)
        values.append(v)
    i, refined = refine_peak(values)
    target = int(round(positions[i] + (refined - i) * step))
    yield ("go", target)
    return Outcome(FOCUSED, f"sweep peak at {target}", target)


def libcamera_scan(p0, limits, coarse, fine, first, ratio=0.75):
    lo, hi = limits
    step = max(1, round((hi - lo) / 12))
    fstep = max(1, round(step / 4))
    samples: dict[int, float] = {}
    p, best_p, best = lo, lo, -math.inf
    while True:
        v, _ = yield ("measure", p)
        samples[p] = v
        if v > best:
            best, best_p = v, p
        elif v < ratio * best:
            break
        if p == hi:
            break
        p = min(p + step, hi)
    xs = sorted(samples)
    i = xs.index(best_p)
    if 0 < i < len(xs) - 1:
        trip = (xs[i - 1], xs[i], xs[i + 1])
        est = fit_parabola(trip, tuple(samples[x] for x in trip))
        est = min(max(est, trip[0]), trip[2])
    else:
        est = best_p
    fine_s: dict[int, float] = {}
    for q in (est - fstep, est, est + fstep):
        q = int(min(max(round(q), lo), hi))
        v, _ = yield ("measure", q)
        fine_s[q] = v
    fx = sorted(fine_s)
    if len(fx) == 3:
        final = fit_parabola(tuple(fx), tuple(fine_s[x] for x in fx))
        final = int(round(min(max(final, fx[0]), fx[2])))
    else:
        final = max(fine_s, key=fine_s.get)
    rose_fell = 0 < i < len(xs) - 1
    yield ("go", final)
    return Outcome(FOCUSED if rose_fell else FAILED, f"libcamera-style peak at {final}", final)


# --- one trial --------------------------------------------------------------------------------

def run_trial(task: dict) -> dict:
    import cv2

    cv2.setNumThreads(1)
    w, h = task["size"]
    threaded = task.get("threaded", False)
    cam = SimCamera(SimConfig(scene=task["scene"], width=w, height=h, seed=task["seed"],
                              best_position=task["best"], start_position=task["start"],
                              fps=FPS if threaded else 0.0))
    mc = MotorConfig(driver="sim")
    motor = SimMotor(cam, backlash=mc.sim_backlash, initial_slack=task["slack"], threaded=threaded,
                     limits=(0, cam.lens_range), speed=mc.sim_speed,
                     acceleration=mc.sim_acceleration, overshoot=mc.backlash_overshoot)
    method = task["method"]
    if method in ("ours", "ours_nohistory"):
        af = Autofocus(motor, AutofocusConfig(), start=True, frame_period=1 / FPS,
                       position_history=method == "ours")
    elif method == "stepped":
        af = Autofocus(motor, AutofocusConfig(sweep=False), start=True, frame_period=1 / FPS)
    elif method == "sweep":
        af = Autofocus(motor, AutofocusConfig(timeout_frames=2000), start=True,
                       frame_period=1 / FPS, search=full_sweep)
    else:
        af = Autofocus(motor, AutofocusConfig(settle_frames=5, timeout_frames=2000), start=True,
                       frame_period=1 / FPS, search=libcamera_scan)
    for _ in range(2000):
        f = cam.read()
        af.on_frame(f, FrameResult(frame=f.index, timestamp=f.timestamp, focus=focus_value(f.grey),
                                   measures={}, tile_map=NO_TILES))
        if af.state in (FOCUSED, FAILED) and not motor.busy:
            break
    out = {**{k: task[k] for k in ("i", "scene", "best", "start", "method")},
           "state": af.state, "frames": af.frames, "moves": af.moves,
           "error": round(cam.lens_position - cam.best_position, 2),
           "in_focus": bool(cam.in_focus()), "returned": motor.position == int(task["start"]),
           "phases": dict(af.phase_frames)}
    motor.close()
    cam.close()
    return out


def make_tasks(trials: int, seed: int, size, flat: int, methods=METHODS,
               threaded: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    scenes = ("mosaic",) + PHOTO_NAMES
    tasks = []
    for i in range(trials + flat):
        scene = "flat" if i >= trials else scenes[int(rng.integers(len(scenes)))]
        base = dict(i=i, scene=scene, best=round(float(rng.uniform(150, 850)), 1),
                    start=float(int(rng.uniform(0, 1000))), slack=int(rng.integers(0, 13)),
                    seed=int(rng.integers(1 << 30)), size=size, threaded=threaded)
        run = methods if scene != "flat" else ("ours",)
        tasks += [dict(base, method=m) for m in run]
    return tasks


PHASES = ("measure", "measure_moving", "measure_settle", "sweep", "creep", "to", "go")


def phase_means(rows: list[dict]) -> dict:
    """Mean frames per trial in each phase (``Autofocus.phase_frames``)."""
    return {k: round(float(np.mean([x.get("phases", {}).get(k, 0) for x in rows])), 2)
            for k in PHASES}


def summarise(rows: list[dict]) -> dict:
    out = {}
    for m in ALL_METHODS:
        r = [x for x in rows if x["method"] == m and x["scene"] != "flat"]
        if not r:
            continue
        frames = np.array([x["frames"] for x in r])
        errs = np.abs([x["error"] for x in r])
        out[m] = {"trials": len(r), "success": round(float(np.mean([x["in_focus"] for x in r])), 3),
                  "focused_state": round(float(np.mean([x["state"] == FOCUSED for x in r])), 3),
                  "frames_median": float(np.median(frames)),
                  "frames_p95": float(np.percentile(frames, 95)),
                  "frames_max": int(frames.max()),
                  "moves_mean": round(float(np.mean([x["moves"] for x in r])), 1),
                  "abs_error_median": round(float(np.median(errs)), 2),
                  "abs_error_max": round(float(errs.max()), 2),
                  "phases": phase_means(r)}
    flat = [x for x in rows if x["scene"] == "flat"]
    if flat:
        out["ours_flat"] = {"trials": len(flat),
                            "failed": round(float(np.mean([x["state"] == FAILED for x in flat])), 3),
                            "returned_to_start": round(float(np.mean([x["returned"] for x in flat])), 3),
                            "frames_median": float(np.median([x["frames"] for x in flat]))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--flat", type=int, default=10, help="extra featureless-scene trials (ours)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--size", default="256x192", help="simulated frame size WxH")
    ap.add_argument("--rows", help="write every trial as JSON lines here")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma-separated subset of: " + ", ".join(ALL_METHODS))
    ap.add_argument("--threaded", action="store_true",
                    help="motor on its own thread, camera paced at 30 fps in wall time")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    methods = tuple(m for m in ALL_METHODS if m in args.methods.split(","))
    tasks = make_tasks(args.trials, args.seed, (w, h), args.flat, methods, args.threaded)
    t0 = time.time()
    rows = []
    pool = mp.get_context("spawn").Pool(args.jobs) if args.jobs > 1 else None
    try:
        results = pool.imap_unordered(run_trial, tasks) if pool else map(run_trial, tasks)
        for n, row in enumerate(results, 1):
            rows.append(row)
            if n % 20 == 0:
                print(f"  {n}/{len(tasks)} runs, {time.time() - t0:.0f} s", file=sys.stderr,
                      flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    rows.sort(key=lambda r: (r["i"], ALL_METHODS.index(r["method"])))
    if args.rows:
        with open(args.rows, "w") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    s = summarise(rows)
    clock = "wall-time paced, threaded motor" if args.threaded else "frame clock"
    print(f"{args.trials} trials ({w}x{h}, {FPS:.0f} fps {clock}, noise + breathing + "
          f"12-step gear play), {time.time() - t0:.0f} s")
    print("| method | success | frames median | frames p95 | frames max | moves (mean) "
          "| abs error median / max (steps) |")
    print("|---|---|---|---|---|---|---|")
    for m in ALL_METHODS:
        if m in s:
            x = s[m]
            print(f"| {m} | {x['success']:.0%} | {x['frames_median']:.0f} | {x['frames_p95']:.0f} "
                  f"| {x['frames_max']} | {x['moves_mean']} | {x['abs_error_median']} / "
                  f"{x['abs_error_max']} |")
    print("\nwhere the frames go (mean per trial): stop-and-measure = moving + settle + "
          "used frames; sweep / creep = frames measured while the lens moves; to = the "
          "re-approach before a creep; go = the final approach")
    print("| method | " + " | ".join(PHASES) + " | total |")
    print("|---|" + "---|" * (len(PHASES) + 1))
    for m in ALL_METHODS:
        if m in s:
            ph = s[m]["phases"]
            print(f"| {m} | " + " | ".join(f"{ph[k]:.2f}" for k in PHASES)
                  + f" | {sum(ph.values()):.1f} |")
    if "ours_flat" in s:
        x = s["ours_flat"]
        print(f"\nfeatureless scene ({x['trials']} trials): failed {x['failed']:.0%}, "
              f"lens back at the start {x['returned_to_start']:.0%}, "
              f"median {x['frames_median']:.0f} frames")
    print(json.dumps(s))


if __name__ == "__main__":
    main()
