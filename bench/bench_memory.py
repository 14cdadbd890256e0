"""Where ``focus-assist run``'s memory goes, its peak RSS and its time to READY.

    python bench/bench_memory.py [--frames 300] [--sources video,sim] [--json FILE]
    python bench/bench_memory.py --sources video --no-steps --repeat 3 --compare /tmp/base
    python bench/bench_memory.py --sources video --no-steps --variants all,-defects,-web

Two measurements, each in fresh child processes so nothing is shared with this script:

1. **Start-up steps**: a child builds a run the way ``focus-assist run`` does, one step at
   a time (interpreter, numpy, OpenCV, ``device.cli``, config, source, app with its
   models, the first frames), and reports its resident memory (VmRSS, VmHWM) after each.
   A second child repeats the steps under ``tracemalloc`` and reports the Python heap
   after each step and the biggest allocation sites at the end (tracemalloc's own
   bookkeeping inflates RSS, so the two are never mixed).
2. **The real run**: ``focus-assist run`` on a camera-like source (a 640x480 video of the
   real Pi board macro sweep, written under a temporary folder by ``sweep_video.py``) with
   every feature on: the CNN, the live defect map with the defect net, capture-when-sharp,
   the frame log, a (mock-GPIO) stepdir motor with continuous autofocus, the web
   viewfinder with peaking, heat map, zoom and a viewer on ``/stream.mjpg``. Peak RSS is
   the child's VmHWM (``/proc/PID/status``, reset by ``exec``), read every 20 ms until it
   exits (``ru_maxrss`` would also count the forked copy of this script before ``exec``);
   time to READY is from the spawn to the
   ``READY=1`` datagram on a bound ``NOTIFY_SOCKET``. ``sim`` runs the simulated camera
   with the sim motor instead.

``--variants`` also runs with one feature turned off alone (``-defects``, ``-web``,
``-motor``, ``-capture``, ``-focusnet``): the difference of the medians is that feature's
share of the peak. ``--compare DIR`` runs another checkout's ``device`` package (e.g. a
``git worktree add /tmp/base <commit>``) alternately with this one's, so the previous code
and this one meet the same machine load; ``--repeat N`` gives medians of N rounds.

Target (issue 20): peak RSS <= 100 MB on the video source with every feature on.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from soak import NotifyDrain, free_port  # noqa: E402
from stream_viewer import viewer  # noqa: E402
from sweep_video import make_sweep_video  # noqa: E402

TARGET_MB = 100.0

# Every feature of a run, as config file text ({tmp} is the scratch folder; {live},
# {focus} and {capture} are "true" unless a variant turns that feature off).
CONFIG = """\
[defects]
live = {live}
detector = "net"
map_file = "{tmp}/state/defects.json"
[models]
enable_focus = {focus}
enable_defects = {live}
[capture]
enabled = {capture}
dir = "{tmp}/captures"
min_free_mb = 0.0
[service]
state_dir = "{tmp}/state"
[log]
jsonl = "{tmp}/frames.jsonl"
[motor]
step_pin = 17
dir_pin = 27
position_file = "{tmp}/state/motor.json"
"""

# ``--variants``: every feature on, or one turned off alone (its share of the peak).
VARIANTS = {
    "all": "every feature on",
    "-defects": "the live defect map (and the defect net) off",
    "-web": "the web viewfinder and its viewer off",
    "-motor": "the motor and autofocus (gpiozero) off",
    "-capture": "capture-when-sharp off",
    "-focusnet": "the focus net off",
}


def config_text(tmp: Path, variant: str = "all") -> str:
    on = {k: "false" if variant == f"-{n}" else "true"
          for k, n in (("live", "defects"), ("focus", "focusnet"), ("capture", "capture"))}
    return CONFIG.format(tmp=tmp, **on)


def run_args(source: str, port: int, variant: str = "all") -> list[str]:
    motor = ["--motor", "sim"] if source.startswith("sim") else ["--motor", "stepdir"]
    args = ["--source", source]
    if variant != "-web":
        args += ["--heatmap", "--zoom", "--web", f"127.0.0.1:{port}"]
    if variant != "-capture":
        args += ["--capture-when-sharp"]
    if variant != "-motor":
        args += [*motor, "--autofocus", "continuous"]
    return args


# The child of the start-up step measurement: prints one JSON line per step.
PROBE = r"""
import json, os, sys, time
TRACE = sys.argv[1] == "trace"
if TRACE:
    import tracemalloc
    tracemalloc.start(12)
t0 = time.perf_counter()
def status():
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) / 1024
    return out
def step(name):
    row = {"step": name, "s": round(time.perf_counter() - t0, 3), **status()}
    if TRACE:
        cur, peak = tracemalloc.get_traced_memory()
        row.update(py_mb=cur / 2**20, py_peak_mb=peak / 2**20)
    print(json.dumps(row), flush=True)
step("interpreter")
import numpy
step("numpy")
import cv2
step("cv2")
import device.cli as cli
from device.common.malloc import tune_malloc
tune_malloc()          # as cmd_run does, before any thread exists
step("device.cli")
from device.config import load_config
args = cli.build_parser().parse_args(["run", "--config", sys.argv[2], *sys.argv[4:]])
cfg = load_config(args.config, cli.run_overrides(args))
step("config")
from device.sources import open_source
source = open_source(cfg.source.spec, cfg)
step("source")
from device.app.wiring import build_app
app = build_app(cfg, source, headless=True)
step("app (models, sinks)")
from device.loop.frame_loop import Loop
loop = Loop(source, app.scorer, app.sinks, max_frames=int(sys.argv[3]), faults=cfg.service)
loop.max_frames = 1
loop.run()
step("first frame")
loop.max_frames = int(sys.argv[3])
loop.run()
step(f"{loop.stats.frames} frames")
if TRACE:
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)])
    top = [{"site": str(s.traceback[0]), "mb": s.size / 2**20}
           for s in snap.statistics("lineno")[:8]]
    print(json.dumps({"top": top}), flush=True)
loop.close()
app.close()
"""


def startup_steps(cfg_path: Path, source: str, frames: int, port: int, env: dict) -> dict:
    out = {}
    for mode in ("rss", "trace"):
        proc = subprocess.run([sys.executable, "-c", PROBE, mode, str(cfg_path), str(frames),
                               *run_args(source, port)],
                              capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"start-up probe failed:\n{proc.stderr[-2000:]}")
        out[mode] = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return out


def _sample_hwm(pid: int, out: list) -> None:
    """Keep ``out[0]`` at the process's VmHWM (MB) until it is gone or a zombie, and
    ``out[1]`` at its anonymous and file-backed RSS (MB) when VmRSS was highest."""
    top = 0
    while True:
        try:
            with open(f"/proc/{pid}/status") as fh:
                text = fh.read()
        except OSError:
            return
        kb = {k: int(v.split()[0]) for k, _, v in (ln.partition(":") for ln in text.splitlines())
              if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")}
        if "VmHWM" not in kb:          # a zombie has no memory left to report
            return
        out[0] = max(out[0], kb["VmHWM"] / 1024)
        if kb.get("VmRSS", 0) > top:
            top = kb["VmRSS"]
            out[1] = {"anon_mb": round(kb.get("RssAnon", 0) / 1024, 1),
                      "file_mb": round(kb.get("RssFile", 0) / 1024, 1)}
        time.sleep(0.02)


def full_run(cfg_path: Path, source: str, frames: int, port: int, env: dict,
             variant: str = "all") -> dict:
    drain = NotifyDrain()
    drain.start()
    cli = Path(sys.executable).with_name("focus-assist")
    cmd = [str(cli) if cli.exists() else sys.executable, *([] if cli.exists() else ["-m", "device.cli"]),
           "run", "--config", str(cfg_path), "--frames", str(frames), "--stats", "--headless",
           *run_args(source, port, variant)]
    env = dict(env, NOTIFY_SOCKET=drain.name)
    stop, got = threading.Event(), [0]
    if variant != "-web":
        threading.Thread(target=viewer, args=(port, stop, got, drain.ready), daemon=True).start()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hwm = [0.0, {}]
    sampler = threading.Thread(target=_sample_hwm, args=(proc.pid, hwm), daemon=True)
    sampler.start()
    _, status, _ = os.wait4(proc.pid, 0)
    sampler.join(1.0)
    t_end = time.monotonic()
    stop.set()
    drain.stop = True
    out, err = proc.stdout.read(), proc.stderr.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"focus-assist run exited {code}:\n{err[-2000:]}")
    stats = json.loads(out.strip().splitlines()[-1])
    return {"source": source.split(":")[0], "variant": variant, "peak_rss_mb": round(hwm[0], 1),
            "at_peak": hwm[1],
            "ready_s": round(drain.ready_at - t0, 2) if drain.ready_at else None,
            "wall_s": round(t_end - t0, 1), "frames": stats.get("frames"),
            "web_frames_encoded": stats.get("web_frames_encoded"),
            "viewer_mb": round(got[0] / 2**20, 1)}


def measure(frames: int = 300, sources: tuple = ("video", "sim"), steps: bool = True,
            variants: tuple = ("all",), trees: Optional[dict] = None, repeat: int = 1) -> dict:
    """Every figure of this benchmark (``bench_report.py`` calls this).

    ``trees``: label -> checkout whose ``device`` package runs (default: this one, as
    "this"); with several, their runs alternate, so a loaded machine's drift hits each
    alike. ``repeat``: rounds of every (source, variant, tree)."""
    trees = trees or {"this": ROOT}
    tmp = Path(tempfile.mkdtemp(prefix="focus-assist-mem-"))
    try:
        (tmp / "state").mkdir()
        video = make_sweep_video(tmp / "sweep.avi", n_frames=max(frames, 100))
        spec = {"video": f"video:{video}", "sim": "sim"}
        base_env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock", STATE_DIRECTORY=str(tmp / "state"))
        cfgs = {}
        for v in variants:
            cfgs[v] = tmp / f"config{v}.toml"
            cfgs[v].write_text(config_text(tmp, v))
        out: dict = {"runs": [], "steps": None}
        for _ in range(max(1, repeat)):
            for s in sources:
                for v in variants:
                    for label, tree in trees.items():
                        env = dict(base_env, PYTHONPATH=str(tree))
                        row = full_run(cfgs[v], spec[s], frames, free_port(), env, v)
                        out["runs"].append(dict(row, tree=label))
        if steps:
            first = next(iter(trees.values()))
            cfg = tmp / "config-steps.toml"
            cfg.write_text(config_text(tmp))
            out["steps"] = startup_steps(cfg, spec[sources[0]], min(frames, 100), free_port(),
                                         dict(base_env, PYTHONPATH=str(first)))
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def print_tables(res: dict) -> None:
    runs = res["runs"]
    trees = list(dict.fromkeys(r.get("tree", "this") for r in runs))
    print(f"{'run':<22}{'tree':<10}{'peak RSS MB':>12}{'to READY s':>12}{'frames':>8}"
          f"{'encoded':>9}{'target':>8}{'anon/file MB':>14}")
    for r in runs:
        all_on = r.get("variant", "all") == "all"
        ok = "ok" if r["peak_rss_mb"] <= TARGET_MB else "OVER"
        print(f"{r['source'] + ' ' + r.get('variant', 'all'):<22}{r.get('tree', 'this'):<10}"
              f"{r['peak_rss_mb']:>12.1f}{r['ready_s'] or float('nan'):>12.2f}"
              f"{r['frames']:>8}{r['web_frames_encoded'] or 0:>9}"
              f"{ok if r['source'] == 'video' and all_on else '':>8}"
              f"{'{anon_mb}/{file_mb}'.format(**r['at_peak']) if r.get('at_peak') else '':>14}")
    groups = list(dict.fromkeys((r["source"], r.get("variant", "all")) for r in runs))
    if len(runs) > len(groups) or len(trees) > 1:
        # Medians: one run on a loaded machine swings by a megabyte or two.
        med = {(s, v, t): statistics.median(r["peak_rss_mb"] for r in runs if r["source"] == s
                                            and r.get("variant", "all") == v and r.get("tree", "this") == t)
               for s, v in groups for t in trees}
        print(f"\nmedian peak RSS MB ({len(runs) // (len(groups) * len(trees))} run(s) each); "
              "'saves': the all-on median minus this one")
        print(f"{'run':<22}" + "".join(f"{t:>12}{'saves':>8}" for t in trees)
              + (f"{trees[-1] + ' - ' + trees[0]:>16}" if len(trees) > 1 else ""))
        for s, v in groups:
            line = f"{s + ' ' + v:<22}"
            for t in trees:
                m = med[(s, v, t)]
                full = med.get((s, "all", t))
                line += f"{m:>12.1f}" + (f"{full - m:>+8.1f}" if full is not None and v != "all" else f"{'':>8}")
            if len(trees) > 1:
                line += f"{med[(s, v, trees[-1])] - med[(s, v, trees[0])]:>+16.1f}"
            print(line)
    if not res["steps"]:
        return
    rss, trace = res["steps"]["rss"], res["steps"]["trace"]
    py = {r["step"]: r for r in trace if "step" in r}
    print(f"\n{'start-up step':<24}{'RSS MB':>8}{'+MB':>7}{'HWM MB':>8}{'anon MB':>9}{'file MB':>9}"
          f"{'py heap MB':>11}{'s':>7}")
    prev = 0.0
    for r in rss:
        t = py.get(r["step"], {})
        print(f"{r['step']:<24}{r['VmRSS']:>8.1f}{r['VmRSS'] - prev:>+7.1f}{r['VmHWM']:>8.1f}"
              f"{r.get('RssAnon', float('nan')):>9.1f}{r.get('RssFile', float('nan')):>9.1f}"
              f"{t.get('py_mb', float('nan')):>11.1f}{r['s']:>7.2f}")
        prev = r["VmRSS"]
    top = next((r["top"] for r in trace if "top" in r), [])
    if top:
        print("\nlargest Python allocation sites at the end (tracemalloc):")
        for t in top:
            print(f"  {t['mb']:7.2f} MB  {t['site']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--sources", default="video,sim", help="comma-separated: video, sim")
    ap.add_argument("--variants", default="all",
                    help="comma-separated: " + ", ".join(f"{k} ({v})" for k, v in VARIANTS.items()))
    ap.add_argument("--compare", metavar="DIR",
                    help="another checkout (e.g. a `git worktree add` of an older commit): its "
                         "runs alternate with this one's, shown side by side")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of every run (medians shown)")
    ap.add_argument("--no-steps", action="store_true", help="skip the start-up step probe")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    sources = tuple(s for s in args.sources.split(",") if s)
    if not sources or any(s not in ("video", "sim") for s in sources):
        ap.error("--sources takes video and/or sim")
    variants = tuple(v for v in args.variants.split(",") if v)
    if not variants or any(v not in VARIANTS for v in variants):
        ap.error("--variants takes " + ", ".join(VARIANTS))
    trees = None
    if args.compare:
        other = Path(args.compare).resolve()
        if not (other / "device" / "__init__.py").is_file():
            ap.error(f"--compare {args.compare}: no device/ package there")
        trees = {"compare": other, "this": ROOT}
    res = measure(args.frames, sources, not args.no_steps, variants, trees, args.repeat)
    print_tables(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    video = [r for r in res["runs"] if r["source"] == "video" and r["variant"] == "all"
             and r["tree"] == "this"]
    return 0 if all(r["peak_rss_mb"] <= TARGET_MB for r in video) else 1


if __name__ == "__main__":
    sys.exit(main())
