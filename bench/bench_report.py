"""One performance table a user can read: loop stages, autofocus, memory, start-up.

    python bench/bench_report.py [--md report.md] [--frames 600] [--af-trials 100]
    make bench-report

Runs, in this order and in one session so the machine's load is the same for all:

* ``bench_loop.profile``: every feature on at 640x480 on a video source with a viewer on
  the stream, stage by stage, against one bare ``cv2.Laplacian(grey, CV_64F).var()``
  pass on the same frames in the same run;
* ``bench_autofocus``: frames to focus of our contrast AF, a libcamera-style scan and a
  full sweep on the simulated lens (random starts and scenes, noise, breathing, backlash);
* ``bench_memory.measure``: peak RSS and time to READY of ``focus-assist run`` with every
  feature on (video source, and the simulator).

``--soak-json FILE`` adds the rows of a soak run apart (``bench_loop.py --soak 50000
--json FILE``: half an hour or more, too long to repeat with every report): its length,
the traced Python heap and RSS along the run, and the ``device/`` sites that grew most.

Prints one table and writes it as markdown to ``--md``, with the machine it ran on (CPU,
cores, load average before and after): figures from a shared or loaded machine are only
comparable as ratios within one run.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import bench_autofocus as baf  # noqa: E402
import bench_loop  # noqa: E402
import bench_memory  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {np.__version__}, OpenCV {cv2.__version__}")


def autofocus(trials: int, jobs: int, seed: int = 2026) -> dict:
    methods = ("ours", "libcamera", "sweep")
    tasks = baf.make_tasks(trials, seed, (256, 192), max(1, trials // 10), methods)
    pool = mp.get_context("spawn").Pool(jobs) if jobs > 1 else None
    try:
        rows = list(pool.imap_unordered(baf.run_trial, tasks) if pool else map(baf.run_trial, tasks))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return baf.summarise(rows)


def table(loop: dict, af: dict, mem: dict) -> list[tuple[str, str, str, str]]:
    """(area, what, measured, target) rows."""
    rows = []
    for r in loop["rows"]:
        where = "" if r["where"] == "frame" or "own thread" in r["stage"] else " (own thread)"
        measured = (f"{r['p50_ms']:.2f} / {r['p95_ms']:.2f} ms "
                    f"({r['x_laplacian_p50']:.2f}x / {r['x_laplacian_p95']:.2f}x)")
        target = ""
        if r["stage"] == "frame total":
            target = "<= 1.0x / <= 1.5x"
            ok = loop["frame_p50_x"] <= 1.0 and loop["frame_p95_x"] <= 1.5
            measured += " **met**" if ok else " **not met**"
        rows.append(("loop stage, p50 / p95 (x bare Laplacian)", r["stage"] + where, measured, target))
    names = {"ours": "our contrast AF", "libcamera": "libcamera-style scan", "sweep": "full sweep"}
    for m in ("ours", "libcamera", "sweep"):
        if m in af:
            x = af[m]
            target = "100%, median <= 12, p95 <= 20" if m == "ours" else ""
            measured = (f"{x['success']:.0%} in focus, median {x['frames_median']:.0f}, "
                        f"p95 {x['frames_p95']:.0f} ({x['trials']} trials)")
            if m == "ours":
                ok = x["success"] == 1.0 and x["frames_median"] <= 12 and x["frames_p95"] <= 20
                measured += " **met**" if ok else " **not met**"
            rows.append(("autofocus, frames to focus", names[m], measured, target))
    if "ours_flat" in af:
        x = af["ours_flat"]
        rows.append(("autofocus, frames to focus", "featureless scene (ours)",
                     f"failed {x['failed']:.0%}, back at start {x['returned_to_start']:.0%}",
                     "fails, returns"))
    for r in mem["runs"]:
        target, measured = "", f"{r['peak_rss_mb']:.1f} MB"
        if r["source"] == "video":
            target = f"<= {bench_memory.TARGET_MB:.0f} MB"
            measured += " **met**" if r["peak_rss_mb"] <= bench_memory.TARGET_MB else " **not met**"
        at = r.get("at_peak") or {}
        if at:
            measured += f" ({at['anon_mb']:.0f} anonymous, {at['file_mb']:.0f} file-backed)"
        rows.append(("memory, every feature on", f"peak RSS, {r['source']} source", measured, target))
        rows.append(("start-up", f"start to READY, {r['source']} source", f"{r['ready_s']:.2f} s", "report"))
    steps = (mem.get("steps") or {}).get("rss") or []
    if steps:
        prev = 0.0
        parts = []
        for s in steps:
            parts.append(f"{s['step']} {s['VmRSS'] - prev:+.0f}")
            prev = s["VmRSS"]
        rows.append(("memory, start-up steps (MB RSS added)", "video source", "; ".join(parts), ""))
    return rows


def soak_rows(soak: dict) -> list[tuple[str, str, str, str]]:
    """Rows of a ``bench_loop.py --soak`` JSON: does anything on the frame path grow?"""
    area = "soak, every feature on, video, a viewer"
    rows = [(area, "length", f"{soak['frames']} frames in {soak['wall_s'] / 60:.0f} min "
             f"(unpaced, under tracemalloc; {soak['web_frames_encoded']} encoded for the viewer)", "50,000")]
    series = soak.get("series") or []
    if series:
        rows.append((area, "traced Python heap, MB at frame",
                     ", ".join(f"{p['frame']:,}: {p['traced_mb']:.1f}" for p in series), ""))
        rows.append((area, "RSS (tracemalloc's own tables included), MB at frame",
                     ", ".join(f"{p['frame']:,}: {p['rss_mb']:.0f}" for p in series), ""))
    grew = "; ".join(f"{g['site'].split('device/')[-1]} {g['kb']:+.0f} KB ({g['count']:+d} blocks)"
                     for g in soak["grew"][:5])
    rows.append((area, f"device/ growth after frame {soak['warmup']}, top sites",
                 f"{soak['device_growth_kb'] / 1024:+.1f} MB in all; {grew}", "none growing"))
    return rows


def markdown(rows, meta: dict) -> str:
    out = [f"Measured {meta['when']} on {meta['machine']}; load average {meta['load_before']} "
           f"before, {meta['load_after']} after ({meta['note']}).", "",
           "| area | what | measured | target |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--md", default="performance-report.md", help="markdown file to write")
    ap.add_argument("--frames", type=int, default=600, help="loop frames (paced at 30 fps)")
    ap.add_argument("--af-trials", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--mem-frames", type=int, default=300)
    ap.add_argument("--note", default="2 cores shared with other jobs",
                    help="what else the machine was doing")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--soak-json", help="add the rows of a bench_loop.py --soak --json FILE run")
    args = ap.parse_args()
    soak = json.loads(Path(args.soak_json).read_text()) if args.soak_json else None
    load0 = " ".join(f"{v:.1f}" for v in os.getloadavg())
    t0 = time.time()
    cv2.setNumThreads(1)
    loop = bench_loop.profile(args.frames, 30.0)
    print(f"loop: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    af = autofocus(args.af_trials, args.jobs)
    print(f"autofocus: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    mem = bench_memory.measure(args.mem_frames, ("video", "sim"))
    print(f"memory: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    meta = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
            "load_before": load0, "load_after": " ".join(f"{v:.1f}" for v in os.getloadavg()),
            "note": args.note}
    rows = table(loop, af, mem) + (soak_rows(soak) if soak else [])
    text = markdown(rows, meta)
    print(text)
    Path(args.md).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "loop": loop, "autofocus": af,
                                               "memory": mem}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
