"""Benchmark: the optics inspector (issue 17), three tables in one run.

1. Accuracy on sweeps rendered from real photos (scikit-image's brick, gravel, grass)
   through a known tilt (``tests/device/optics/tilted_sweep.py``: best focus varying
   linearly across the frame, 21 frames, 1 px of blur per frame), for ``inspect`` on the
   images and for the live inspector on the loop's tile maps of the same frames played as
   a hand pass: the recovered tilt against the truth.
2. Cost: ``inspect_sweep`` on the real ``pi_board_macro`` sweep (49 frames of 1920x1080,
   4x4 grid) and on one rendered sweep, split into scoring the images and the analysis;
   and the live path (``analyse_pass`` on 49 tile maps, what ``POST /api/inspect`` costs).
3. What ``inspect`` says about ``pi_board_macro`` (a 3D scene, not a tilt).

    python bench/bench_inspect.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from device.common.preprocess import to_grey  # noqa: E402
from device.config.inspect import InspectConfig  # noqa: E402
from device.optics.inspect import inspect_curves, inspect_sweep, region_curves  # noqa: E402
from device.optics.live import LiveInspector, Pass, analyse_pass  # noqa: E402
from device.scoring.classic import ClassicScorer  # noqa: E402
from device.sources.base import Frame  # noqa: E402
from device.sources.files import read_image  # noqa: E402
from tests.device.optics.tilted_sweep import render_sweep  # noqa: E402

PI_BOARD = ROOT.parent / "shared" / "data" / "focus_sweeps" / "pi_board_macro"
CASES = [("brick", 0.0, 0.0), ("brick", 6.0, -4.0), ("gravel", -3.0, 5.0), ("grass", 4.0, 3.0),
         ("gravel", 2.0, 0.0), ("grass", 0.0, -2.0)]


def tile_maps(frames) -> np.ndarray:
    scorer = ClassicScorer()
    return np.stack([scorer.score(Frame(grey=g, timestamp=0.0, index=i)).tile_map
                     for i, g in enumerate(frames)])


def live_hand_pass(frames) -> dict:
    ins = LiveInspector(InspectConfig(enabled=True))
    scorer = ClassicScorer()
    for i, g in enumerate(frames):
        f = Frame(grey=g, timestamp=float(i), index=i)
        ins.on_frame(f, scorer.score(f))
    return ins.last()


def cpu_ms(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        ts.append(time.process_time() - t)
    return 1000 * float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import cv2
    from skimage import data

    cv2.setNumThreads(1)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores shared)")

    print("\n1. Tilt recovered from rendered sweeps (frames; true -> inspect | live hand pass)")
    print(f"{'photo':>7} {'true x':>7} {'true y':>7} {'inspect x':>10} {'inspect y':>10} "
          f"{'live x':>7} {'live y':>7} {'verdict (inspect/live)':>24}")
    errs, sweeps = [], {}
    for photo, tx, ty in CASES:
        frames = render_sweep(getattr(data, photo)(), 21, 10.0, tilt_x=tx, tilt_y=ty)
        sweeps.setdefault(photo, frames)
        ins = inspect_sweep(frames, (3, 3))
        live = live_hand_pass(frames)
        lx, ly = (live.get("tilt") or {}).get("x"), (live.get("tilt") or {}).get("y")
        errs += [abs(ins.fit.tilt_x - tx), abs(ins.fit.tilt_y - ty)]
        if lx is not None:
            errs += [abs(lx - tx), abs(ly - ty)]
        print(f"{photo:>7} {tx:>7.1f} {ty:>7.1f} {ins.fit.tilt_x:>10.2f} {ins.fit.tilt_y:>10.2f} "
              f"{lx if lx is None else round(lx, 2)!s:>7} {ly if ly is None else round(ly, 2)!s:>7} "
              f"{ins.verdict + ' / ' + str(live.get('verdict')):>24}")
    print(f"   worst |tilt error| {max(errs):.2f} frames (target < 1)")

    print(f"\n2. Cost, CPU ms (median of {args.repeats})")
    rendered = sweeps["brick"]
    rows = [("rendered 21 x 512x512, 3x3", rendered, (3, 3))]
    board = None
    if PI_BOARD.is_dir():
        board = [to_grey(read_image(p)) for p in sorted(PI_BOARD.glob("*.jpg"))]
        rows.append((f"pi_board_macro {len(board)} x {board[0].shape[1]}x{board[0].shape[0]}, 4x4",
                     board, (4, 4)))
    for name, frames, grid in rows:
        curves = region_curves(frames, grid)
        score = cpu_ms(lambda: region_curves(frames, grid), max(1, args.repeats // 2))
        fit = cpu_ms(lambda: inspect_curves(curves), args.repeats * 20)
        print(f"   {name}: scoring the images {score:.0f} ms, analysis {fit:.2f} ms")
    maps = tile_maps(board if board is not None else rendered)
    p = Pass("hand", maps)
    live = cpu_ms(lambda: analyse_pass(p, (3, 3)), args.repeats * 20)
    print(f"   live: analyse_pass on {maps.shape[0]} tile maps of {maps.shape[1]}x{maps.shape[2]} "
          f"-> 3x3: {live:.2f} ms (the loop has scored the frames already)")

    if board is not None:
        ins = inspect_sweep(board, (4, 4))
        print(f"\n3. pi_board_macro, 4x4: verdict {ins.verdict}, fit rms {ins.fit.fit_rms} frames, "
              f"plane rms {ins.fit.plane_rms}, tilt x {ins.fit.tilt_x} y {ins.fit.tilt_y}")
        print(f"   {ins.summary}")
    print(f"\nload average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
