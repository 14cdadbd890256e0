"""Benchmark: classic focus scoring per frame vs one bare cv2.Laplacian pass.

Frames are real photographs rendered by the simulated camera (noise on). Both are timed
side by side in one run, interleaved, so machine load affects them alike; the ratio is
the figure to quote. Target: frame measure + tile map at 640x480 <= 4x one Laplacian.

    python bench/bench_scoring.py [--frames 300]
"""
from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from device.config import SimConfig
from device.scoring.measures import focus_value, score_frame
from device.sources.sim import SimCamera


def frames_at(width: int, height: int, n: int) -> list[np.ndarray]:
    cam = SimCamera(SimConfig(width=width, height=height, seed=7))
    out = []
    for i in range(n):
        cam.lens_position = cam.best_position + (i % 9 - 4) * 15
        out.append(cam.read().grey)
    cam.close()
    return out


def time_ms(fn, frames, repeats: int) -> np.ndarray:
    samples = []
    for _ in range(repeats):
        for f in frames:
            t = time.perf_counter()
            fn(f)
            samples.append((time.perf_counter() - t) * 1e3)
    return np.asarray(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    rows = []
    for w, h in ((640, 480), (1332, 990)):
        frames = frames_at(w, h, args.frames)
        fns = {
            "laplacian": lambda f: cv2.Laplacian(f, cv2.CV_32F),
            "focus_value": lambda f: focus_value(f),
            "score_frame": lambda f: score_frame(f, grid=(6, 8)),
        }
        for fn in fns.values():           # warm-up
            time_ms(fn, frames[:5], 1)
        res = {k: [] for k in fns}
        for _ in range(args.repeats):     # interleaved, so load hits all alike
            for k, fn in fns.items():
                res[k].append(time_ms(fn, frames, 1))
        res = {k: np.concatenate(v) for k, v in res.items()}
        lap = float(np.median(res["laplacian"]))
        for k, v in res.items():
            rows.append({"size": f"{w}x{h}", "what": k, "p50_ms": round(float(np.median(v)), 3),
                         "p95_ms": round(float(np.percentile(v, 95)), 3),
                         "x_laplacian": round(float(np.median(v)) / lap, 2)})
    print(f"{'size':>10} {'what':>12} {'p50 ms':>8} {'p95 ms':>8} {'x Laplacian':>12}")
    for r in rows:
        print(f"{r['size']:>10} {r['what']:>12} {r['p50_ms']:>8.3f} {r['p95_ms']:>8.3f} {r['x_laplacian']:>12.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
