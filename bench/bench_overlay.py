"""Viewfinder speed: overlay cost per 640x480 frame, and MJPEG fps with several viewers.

    python bench/bench_overlay.py [--seconds 4] [--clients 3] [--repeats 7] [--json]

Targets (issue 5): overlay <= 2 ms per 640x480 frame; MJPEG >= 15 fps at 640x480 while
the loop keeps the camera's rate. Overlay figures are the median CPU time per frame over
a focus pull of a real photograph rendered by the simulated camera, the best of repeats
that take turns across variants (other engineers' jobs share the CPU).
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from device.config import OverlayConfig, ServiceConfig, SimConfig  # noqa: E402
from device.loop.frame_loop import Loop  # noqa: E402
from device.scoring.classic import ClassicScorer  # noqa: E402
from device.sources.sim import SimCamera  # noqa: E402
from device.viewfinder.state import Viewfinder  # noqa: E402
from device.viewfinder.web.server import BOUNDARY, WebViewfinder  # noqa: E402


def overlay_run(cfg: OverlayConfig, frames: list, results: list, mode: str) -> dict:
    """Median ms per frame of one overlay variant over one pass of the frames: ``cpu`` is
    the thread's CPU time (robust when other processes share the cores), ``wall`` the clock."""
    vf = Viewfinder(cfg)
    cpu, wall = [], []
    for frame, result in zip(frames, results):
        vf.on_frame(frame, result)
        canvas = frame.color.copy()
        c0, w0 = time.thread_time(), time.perf_counter()
        if mode == "draw":        # onto a canvas the caller already owns (post_callback)
            vf.draw_into(canvas, frame, result)
        elif mode == "compose":   # copy + draw (web stream)
            vf.compose(frame, result)
        else:                     # transparent RGBA layer (set_overlay), kept between frames
            vf.overlay_rgba(frame, result, (640, 480))
        cpu.append((time.thread_time() - c0) * 1e3)
        wall.append((time.perf_counter() - w0) * 1e3)
    return {"cpu": statistics.median(cpu), "wall": statistics.median(wall)}


def bench_overlay(n_frames: int = 60, repeats: int = 7) -> dict:
    cam = SimCamera(SimConfig(scene="mosaic", seed=1, best_position=500, start_position=500))
    scorer = ClassicScorer()
    frames, results = [], []
    for i in range(n_frames):
        cam.lens_position = 440 + i * 2          # a slow focus pull through the peak
        f = cam.read()
        frames.append(f)
        r = scorer.score(f)
        r.roi = (200, 150, 240, 180)
        r.defects = [{"x": 100, "y": 80, "kind": "hot", "confidence": 0.9}]
        results.append(r)
    cv2.setNumThreads(1)   # the loop thread owns one core on a Pi; measure like that
    variants = [(f"{name}_{mode}_ms", cfg, mode)
                for name, cfg in (("default", OverlayConfig()),
                                  ("all", OverlayConfig(heatmap=True, zoom=True)))
                for mode in ("draw", "compose", "rgba")]
    # Repeats take turns, so a burst of load from other jobs hits every variant alike;
    # each variant keeps its best pass.
    best = {key: {"cpu": float("inf"), "wall": float("inf")} for key, _, _ in variants}
    for _ in range(repeats):
        for key, cfg, mode in variants:
            run = overlay_run(cfg, frames, results, mode)
            best[key] = {k: min(best[key][k], run[k]) for k in run}
    out = {key: {k: round(v, 3) for k, v in b.items()} for key, b in best.items()}
    # Peaking analysis alone (the per-frame part shared by all viewers).
    from device.overlay import PeakingState, peaking_mask
    st = PeakingState()
    ts = []
    for _ in range(3):
        for i, f in enumerate(frames):
            t0 = time.thread_time()
            peaking_mask(f.grey, st, i / 30)
            ts.append((time.thread_time() - t0) * 1e3)
    out["peaking_analysis_ms"] = round(statistics.median(ts), 3)
    cv2.setNumThreads(-1)
    return out


def _reader(port: int, seconds: float, counts: list, idx: int) -> None:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: bench\r\n\r\n")
        marker = f"--{BOUNDARY}".encode()
        end = time.monotonic() + seconds
        tail = b""
        while time.monotonic() < end:
            data = s.recv(262144)
            if not data:
                break
            buf = tail + data
            counts[idx] += buf.count(marker)
            tail = buf[-len(marker):]
    finally:
        s.close()


def bench_stream(seconds: float, clients: int, fps: float) -> dict:
    cam = SimCamera(SimConfig(scene="mosaic", seed=1, fps=fps))
    scorer = ClassicScorer()
    vf = Viewfinder(OverlayConfig())
    web = WebViewfinder("127.0.0.1:0", vf, source=cam, scorer=scorer)
    loop = Loop(cam, scorer, [vf, web], faults=ServiceConfig())
    t = threading.Thread(target=loop.run, daemon=True)
    t.start()
    try:
        time.sleep(1.0)
        f0, t0 = loop.stats.frames, time.monotonic()
        time.sleep(seconds / 2)
        idle_fps = (loop.stats.frames - f0) / (time.monotonic() - t0)
        counts = [0] * clients
        readers = [threading.Thread(target=_reader, args=(web.port, seconds, counts, i)) for i in range(clients)]
        f0, t0 = loop.stats.frames, time.monotonic()
        for r in readers:
            r.start()
        for r in readers:
            r.join()
        wall = time.monotonic() - t0
        loop_fps = (loop.stats.frames - f0) / wall
        enc = list(web.stream.encode_ms)
    finally:
        loop.stop()
        t.join(5)
        loop.close()
    return {
        "camera_fps": fps, "clients": clients,
        "loop_fps_no_viewer": round(idle_fps, 1),
        "loop_fps_with_viewers": round(loop_fps, 1),
        "mjpeg_fps_per_client": [round(c / wall, 1) for c in counts],
        "compose_encode_ms_p50": round(statistics.median(enc), 2) if enc else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--fps", type=float, default=30.0, help="simulated camera rate")
    ap.add_argument("--repeats", type=int, default=7, help="passes over the frames per variant")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {"overlay_640x480": bench_overlay(repeats=max(1, args.repeats)),
           "mjpeg_640x480": bench_stream(args.seconds, args.clients, args.fps)}
    if args.json:
        print(json.dumps(out))
    else:
        for section, vals in out.items():
            print(section)
            for k, v in vals.items():
                print(f"  {k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
