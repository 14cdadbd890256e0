"""The frame loop with every feature on, stage by stage, against one bare Laplacian pass.

    python bench/bench_loop.py [--frames 600] [--fps 30] [--json FILE]
    python bench/bench_loop.py --soak 5000        # allocation growth on the frame path

The app is built the way ``focus-assist run`` builds it (``device.app.wiring``) on a
640x480 video of the real Pi board macro sweep (``sweep_video.py``, played forward and
back, looping), with every feature on: the CNN, the live defect map with the defect net,
capture-when-sharp, the frame log, a (mock-GPIO) stepdir motor with continuous autofocus,
and the web viewfinder with peaking, heat map and zoom, with a viewer reading
``/stream.mjpg`` the whole time.

Each frame is timed stage by stage on the frame thread (the scorer's classic part, the
focus net, every sink's ``on_frame``), and then, on the same grey frame in the same run,
one bare ``cv2.Laplacian(grey, cv2.CV_64F).var()``: the ratio is the figure to quote
(issue 20: frame p50 <= 1.0x and p95 <= 1.5x the bare pass). Work on other threads
(peaking analysis, overlay + JPEG, the defect analysis) is timed too and listed apart:
it costs CPU but never holds up a frame. Frames are paced at ``--fps`` like a camera, so
those threads get the time they would on a Pi; times are CPU-clock medians of the
frame thread (``time.thread_time``) and wall clock (``perf_counter``).

``--soak N`` runs N frames unpaced under ``tracemalloc`` and prints the Python
allocation sites of ``device/`` that grew between the end of the warm-up (10%) and the
end: a frame-path leak shows as a site growing with the frame count.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from stream_viewer import viewer  # noqa: E402
from sweep_video import make_sweep_video  # noqa: E402

from device.sources.base import FrameSource  # noqa: E402

CONFIG = """\
[defects]
live = true
detector = "net"
map_file = "{tmp}/state/defects.json"
save_interval_s = 5.0
[models]
enable_focus = true
enable_defects = true
focus_thread = "{focus_thread}"
[capture]
enabled = true
dir = "{tmp}/captures"
min_free_mb = 0.0
cooldown_s = 0.5
max_files = 100000
[service]
state_dir = "{tmp}/state"
[log]
jsonl = "{tmp}/frames.jsonl"
[motor]
step_pin = 17
dir_pin = 27
position_file = "{tmp}/state/motor.json"
"""
FLAGS = ["--heatmap", "--zoom", "--capture-when-sharp", "--web", "127.0.0.1:0",
         "--motor", "stepdir", "--autofocus", "continuous"]


class LoopingVideo(FrameSource):
    """A video file played again from the start at its end (a camera that never stops)."""
    live = False

    def __init__(self, path: Path):
        super().__init__()
        from device.sources.files import VideoSource

        self._open = lambda: VideoSource(str(path))
        self._video = self._open()
        self.name = self._video.name

    def _read(self):
        f = self._video.read()
        if f is None:
            self._video.close()
            self._video = self._open()
            f = self._video.read()
        from device.sources.base import Frame

        return Frame(grey=f.grey, color=f.color, timestamp=time.monotonic(), index=self._next_index())

    def _close(self):
        self._video.close()


def build(tmp: Path, video: Path, focus_thread: str = "worker"):
    import device.cli as cli
    from device.app.wiring import build_app
    from device.config import load_config

    (tmp / "state").mkdir(exist_ok=True)
    cfg_path = tmp / "config.toml"
    from dataclasses import fields

    from device.config import ModelsConfig

    text = CONFIG.format(tmp=tmp, focus_thread=focus_thread)
    if "focus_thread" not in {f.name for f in fields(ModelsConfig)}:   # an older checkout
        text = text.replace(f'focus_thread = "{focus_thread}"\n', "")
    cfg_path.write_text(text)
    args = cli.build_parser().parse_args(["run", "--config", str(cfg_path), *FLAGS])
    cfg = load_config(args.config, cli.run_overrides(args))
    source = LoopingVideo(video)
    return cfg, source, build_app(cfg, source, headless=True)


class Timed:
    """Wraps a callable; appends its CPU and wall ms (on whichever thread calls it)."""

    def __init__(self, fn):
        self.fn, self.cpu, self.wall = fn, [], []

    def __call__(self, *a, **k):
        c0, w0 = time.thread_time(), time.perf_counter()
        try:
            return self.fn(*a, **k)
        finally:
            self.cpu.append((time.thread_time() - c0) * 1e3)
            self.wall.append((time.perf_counter() - w0) * 1e3)


def bare_laplacian(grey: np.ndarray) -> float:
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _pct(v, q) -> float:
    return float(np.percentile(v, q)) if len(v) else float("nan")


def profile(frames: int = 600, fps: float = 30.0, warmup: int = 30,
            focus_thread: str = "worker") -> dict:
    """Per-stage figures of one paced run (``bench_report.py`` calls this)."""
    # glibc tuned as cmd_run tunes it (device/common/malloc.py): the mmap threshold
    # decides whether a frame's arrays cost page faults, so it must be run's.
    from device.common.malloc import tune_malloc
    tune_malloc()
    tmp = Path(tempfile.mkdtemp(prefix="focus-assist-loop-"))
    stop, got = threading.Event(), [0]
    app = source = None
    try:
        video = make_sweep_video(tmp / "sweep.avi", n_frames=97)
        cfg, source, app = build(tmp, video, focus_thread)
        # Off-thread work, timed where it runs.
        import device.viewfinder.state as vstate
        _ORIGINAL.setdefault("peaking_mask", vstate.peaking_mask)
        peaking = Timed(vstate.peaking_mask)
        vstate.peaking_mask = peaking
        compose = Timed(app.viewfinder.compose)
        app.viewfinder.compose = compose
        defects = Timed(app.defect_map._analyse)
        app.defect_map._analyse = defects
        threading.Thread(target=viewer, args=(app.web.port, stop, got), daemon=True).start()
        time.sleep(1.0)
        scorer = app.scorer
        classic = Timed(scorer.classic.score)
        scorer.classic.score = classic
        net = Timed(scorer.focus.analyse)
        scorer.focus.analyse = net
        background = getattr(scorer, "background", False)      # older checkouts: no worker
        names = ["classic scorer", "focus net (hand-off)" if background else "focus net"] \
            + [type(s).__name__ for s in app.sinks]
        cpu = {n: [] for n in names}
        total_cpu, total_wall, lap_cpu, lap_wall = [], [], [], []
        period = 1.0 / fps if fps > 0 else 0.0
        next_t = time.perf_counter()
        for i in range(frames + warmup):
            frame = source.read()
            rec = []
            lap_first = i % 2 == 0          # alternate order: neither gets the warm cache
            if lap_first:
                c0, w0 = time.thread_time(), time.perf_counter()
                bare_laplacian(frame.grey)
                lc, lw = time.thread_time() - c0, time.perf_counter() - w0
            c_start, w_start = time.thread_time(), time.perf_counter()
            result = scorer.score(frame)
            c0 = time.thread_time()
            rec.append(classic.cpu[-1] / 1e3)
            rec.append(c0 - c_start - classic.cpu[-1] / 1e3)
            for sink in app.sinks:
                sink.on_frame(frame, result)
                c1 = time.thread_time()
                rec.append(c1 - c0)
                c0 = c1
            fc, fw = time.thread_time() - c_start, time.perf_counter() - w_start
            if not lap_first:
                c0, w0 = time.thread_time(), time.perf_counter()
                bare_laplacian(frame.grey)
                lc, lw = time.thread_time() - c0, time.perf_counter() - w0
            if i >= warmup:
                for n, v in zip(names, rec):
                    cpu[n].append(v * 1e3)
                total_cpu.append(fc * 1e3)
                total_wall.append(fw * 1e3)
                lap_cpu.append(lc * 1e3)
                lap_wall.append(lw * 1e3)
            if period:
                next_t += period
                delay = next_t - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_t = time.perf_counter()
        encoded = app.web.stream.encoded
    finally:
        _cleanup(stop, app, source, tmp)
    lap50, lap95 = _pct(lap_cpu, 50), _pct(lap_cpu, 95)
    rows = [{"stage": n, "where": "frame", "p50_ms": _pct(v, 50), "p95_ms": _pct(v, 95)}
            for n, v in cpu.items()]
    rows.append({"stage": "frame total", "where": "frame", "p50_ms": _pct(total_cpu, 50),
                 "p95_ms": _pct(total_cpu, 95)})
    rows.append({"stage": "bare cv2.Laplacian var", "where": "frame", "p50_ms": lap50, "p95_ms": lap95})
    off = [("peaking analysis", peaking), ("overlay + JPEG (per encoded frame)", compose),
           ("defect analysis (1 in 5 frames)", defects)]
    if background:
        off.insert(0, ("focus net (newest frame)", net))
    for name, t in off:
        rows.append({"stage": name, "where": "other thread", "p50_ms": _pct(t.cpu, 50),
                     "p95_ms": _pct(t.cpu, 95), "count": len(t.cpu)})
    for r in rows:
        r["x_laplacian_p50"] = r["p50_ms"] / lap50
        r["x_laplacian_p95"] = r["p95_ms"] / lap95
    return {"frames": frames, "fps": fps, "focus_thread": "worker" if background else "frame",
            "rows": rows, "web_frames_encoded": encoded,
            "viewer_mb": round(got[0] / 2**20, 1),
            "frame_p50_x": _pct(total_cpu, 50) / lap50, "frame_p95_x": _pct(total_cpu, 95) / lap95,
            "frame_wall_p50_ms": _pct(total_wall, 50), "frame_wall_p95_ms": _pct(total_wall, 95),
            "laplacian_wall_p50_ms": _pct(lap_wall, 50), "laplacian_wall_p95_ms": _pct(lap_wall, 95),
            "load": os.getloadavg()}


_ORIGINAL = {}


def _cleanup(stop: threading.Event, app, source, tmp: Path) -> None:
    """The end of every run, however far its set-up got (``app`` and ``source`` are None
    until ``build`` returns)."""
    stop.set()
    if app is not None:
        app.close()
    if source is not None:
        source.close()
    import device.viewfinder.state as vstate
    if "peaking_mask" in _ORIGINAL:
        vstate.peaking_mask = _ORIGINAL["peaking_mask"]
    shutil.rmtree(tmp, ignore_errors=True)


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def soak(frames: int, top: int = 10, progress: bool = False) -> dict:
    """Unpaced run under tracemalloc: device/ allocation sites that grew after warm-up."""
    import tracemalloc

    tmp = Path(tempfile.mkdtemp(prefix="focus-assist-soak-"))
    stop, got = threading.Event(), [0]
    from device.loop.frame_loop import Loop

    app = source = None
    try:
        video = make_sweep_video(tmp / "sweep.avi", n_frames=97)
        cfg, source, app = build(tmp, video, "worker")
        threading.Thread(target=viewer, args=(app.web.port, stop, got), daemon=True).start()
        loop = Loop(source, app.scorer, app.sinks, faults=cfg.service)
        tracemalloc.start(4)
        warm = max(100, frames // 10)
        t0 = time.monotonic()
        s0 = None
        series = []
        # Checkpoints every 10% (the first is the end of the warm-up): RSS and the
        # traced Python heap at each, so a slow climb shows between the two snapshots too.
        for target in sorted({*range(warm, frames, warm), frames}):
            loop.max_frames = target
            loop.run()
            cur, _ = tracemalloc.get_traced_memory()
            series.append({"frame": loop.stats.frames, "s": round(time.monotonic() - t0, 1),
                           "rss_mb": round(_rss_mb(), 1), "traced_mb": round(cur / 2**20, 2)})
            if progress:
                print(f"  frame {series[-1]['frame']:>6}  {series[-1]['s']:>7.1f} s  "
                      f"RSS {series[-1]['rss_mb']:6.1f} MB  traced {series[-1]['traced_mb']:6.2f} MB",
                      flush=True)
            if s0 is None:
                s0 = tracemalloc.take_snapshot()
        s1 = tracemalloc.take_snapshot()
        wall = time.monotonic() - t0
        cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        keep = [tracemalloc.Filter(True, str(ROOT / "device") + "/*")]
        diff = s1.filter_traces(keep).compare_to(s0.filter_traces(keep), "lineno")
        grew = [{"site": str(d.traceback[0]), "kb": round(d.size_diff / 1024, 1), "count": d.count_diff}
                for d in diff if d.size_diff > 0][:top]
        total = sum(d.size_diff for d in diff) / 1024
        # Everything else too (stdlib, libraries, this script's viewer), by whole traceback
        # so a site outside device/ still shows which device/ line reached it.
        skip = [tracemalloc.Filter(False, tracemalloc.__file__)]
        rest = s1.filter_traces(skip).compare_to(s0.filter_traces(skip), "traceback")
        # (a Traceback runs from the oldest frame to the newest: the site is the last)
        other = [{"site": " <- ".join(str(f) for f in reversed(d.traceback)),
                  "kb": round(d.size_diff / 1024, 1), "count": d.count_diff}
                 for d in rest if d.size_diff > 0 and not str(d.traceback[-1].filename).startswith(
                     str(ROOT / "device"))][:top]
        all_kb = sum(d.size_diff for d in rest) / 1024
        out = {"frames": loop.stats.frames, "warmup": warm, "wall_s": round(wall, 1),
               "device_growth_kb": round(total, 1), "grew": grew,
               "all_growth_kb": round(all_kb, 1), "grew_elsewhere": other,
               "traced_mb": round(cur / 2**20, 1), "traced_peak_mb": round(peak / 2**20, 1),
               "web_frames_encoded": app.web.stream.encoded, "series": series,
               "viewer_mb": round(got[0] / 2**20, 1), "load": os.getloadavg()}
    finally:
        _cleanup(stop, app, source, tmp)
    return out


def print_profile(res: dict) -> None:
    print(f"every feature on (focus net: {res['focus_thread']} thread), 640x480 video, "
          f"{res['frames']} frames paced at {res['fps']:g} fps, "
          f"a viewer on the stream ({res['web_frames_encoded']} frames encoded); load "
          + " ".join(f"{v:.1f}" for v in res["load"]))
    print(f"{'stage':<36}{'thread':<14}{'p50 ms':>8}{'p95 ms':>8}{'x lap p50':>10}{'x lap p95':>10}")
    for r in res["rows"]:
        print(f"{r['stage']:<36}{r['where']:<14}{r['p50_ms']:>8.3f}{r['p95_ms']:>8.3f}"
              f"{r['x_laplacian_p50']:>10.2f}{r['x_laplacian_p95']:>10.2f}")
    print(f"frame thread vs bare Laplacian: p50 {res['frame_p50_x']:.2f}x, p95 {res['frame_p95_x']:.2f}x "
          "(target <= 1.0x, <= 1.5x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--fps", type=float, default=30.0, help="pace like a camera (0: unpaced)")
    ap.add_argument("--focus-thread", choices=("worker", "frame"), default="worker",
                    help="models.focus_thread: worker (what a camera gets) or frame")
    ap.add_argument("--soak", type=int, default=0, metavar="N",
                    help="instead: N unpaced frames under tracemalloc, report growth")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    cv2.setNumThreads(1)      # the loop thread owns one core on a Pi; measure like that
    if args.soak:
        res = soak(args.soak, progress=True)
        print(f"soak: {res['frames']} frames in {res['wall_s']} s (warm-up {res['warmup']}); "
              f"device/ Python allocations grew {res['device_growth_kb']} KB after warm-up")
        for g in res["grew"]:
            print(f"  {g['kb']:>8.1f} KB  {g['count']:>+6d} blocks  {g['site']}")
        print(f"all Python allocations grew {res['all_growth_kb']} KB; outside device/:")
        for g in res["grew_elsewhere"]:
            print(f"  {g['kb']:>8.1f} KB  {g['count']:>+6d} blocks  {g['site']}")
        print(f"{res['web_frames_encoded']} frames encoded for the viewer; load "
              + " ".join(f"{v:.1f}" for v in res["load"]))
    else:
        res = profile(args.frames, args.fps, focus_thread=args.focus_thread)
        print_profile(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
