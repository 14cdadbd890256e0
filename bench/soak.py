#!/usr/bin/env python3
"""Soak test: the real ``focus-assist run`` for 50,000 simulated frames, every feature on.

Runs the CLI as the service would (a bound NOTIFY_SOCKET, a watchdog, a state folder),
samples the process's resident memory (VmRSS) once a second, and checks that after the
warm-up it stays within ``--limit-mb`` (10 MB): a leak of even 200 bytes a frame shows.

"Every feature" means every config section and CLI flag this checkout has from the list
below; the script prints which ones it turned on, so a run is honest about what it
covered. On top of the config, the script plays the people using it:

* a browser that keeps ``/stream.mjpg`` open and reads every frame (so the MJPEG encoder
  composes the overlay, with peaking, heat map, zoom inset, HUD and defects, for every
  frame it can keep up with);
* a page polling ``/api/status``, ``/`` and ``/snapshot.jpg`` every 2 s;
* a press of the autofocus button (``POST /api/autofocus``) every ``--af-every`` seconds:
  the motor sweeps the simulated lens through focus, which also gives capture-when-sharp
  focus peaks to fire on; and the web shutter (``POST /api/capture``) every ``--capture-every``.

The simulated camera is unpaced (``sim.fps = 0``): frames come as fast as the two cores
allow. It is a benchmark script, not a test: run it by hand (about an hour on 2 busy cores)::

    .venv/bin/python bench/soak.py                 # 50,000 frames
    .venv/bin/python bench/soak.py --frames 5000   # a quick look

Exit status 0 if memory stayed flat, 1 if not.
"""
from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.config import Config  # noqa: E402  (after the path fix, to run from a checkout)

# (section, key, value); "{tmp}" is replaced by the run's scratch folder. Only entries
# whose section and key exist in this checkout's Config are used.
FEATURES = [
    ("sim", "fps", 0.0),                         # as fast as the CPU allows
    ("log", "jsonl", "{tmp}/frames.jsonl"),
    ("service", "state_dir", "{tmp}/state"),
    ("capture", "enabled", True),
    ("capture", "dir", "{tmp}/captures"),
    ("capture", "cooldown_s", 0.5),
    ("capture", "max_files", 100000),
    ("capture", "min_free_mb", 0.0),
    ("defects", "live", True),
    ("defects", "map_file", "{tmp}/state/defects.json"),
    ("defects", "save_interval_s", 5.0),
    ("models", "enable_focus", True),
    ("models", "enable_defects", True),
    ("motor", "driver", "sim"),
    ("motor", "position_file", "{tmp}/state/motor.json"),
    ("autofocus", "mode", "continuous"),
    ("web", "enabled", True),
    ("web", "listen", "127.0.0.1:{port}"),
    ("web", "address", "127.0.0.1:{port}"),
    ("web", "port", "{port:int}"),
]

# CLI flags turned on when ``focus-assist run --help`` lists them.
FLAGS = [
    ("--capture-when-sharp", []),
    ("--web", ["127.0.0.1:{port}"]),
    ("--autofocus", ["continuous"]),
    ("--motor", ["sim"]),
    ("--heatmap", []),
    ("--zoom", []),
]

WEB_PATHS = ["/", "/api/status", "/snapshot.jpg"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(value, tmp: Path, port: int):
    if value == "{port:int}":
        return port
    if isinstance(value, str):
        return value.format(tmp=tmp, port=port)
    return value


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def build_config(tmp: Path, port: int) -> tuple[str, list[str]]:
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = {f.name: {g.name for g in dataclasses.fields(f.default_factory())}  # type: ignore[misc]
             for f in dataclasses.fields(Config)}
    chosen: dict[str, dict] = {}
    used = []
    for section, key, value in FEATURES:
        if section in sections and key in hints[section]:
            chosen.setdefault(section, {})[key] = fill(value, tmp, port)
            used.append(f"{section}.{key}")
    lines = []
    for section, kv in chosen.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in kv.items()]
    return "\n".join(lines) + "\n", used


def cli() -> list[str]:
    script = Path(sys.executable).with_name("focus-assist")
    return [str(script)] if script.exists() else [sys.executable, "-m", "device.cli"]


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class NotifyDrain(threading.Thread):
    """Plays systemd: keeps the notify socket drained and remembers what arrived."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        tag = f"focus-assist-soak-{uuid.uuid4().hex}"
        self.sock.bind("\0" + tag)
        self.sock.settimeout(0.5)
        self.name = "@" + tag
        self.ready_at: float | None = None
        self.ready = threading.Event()      # the web server is up once READY=1 arrives
        self.pings: list[float] = []
        self.last_status = ""
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            for field in data.split("\n"):
                if field == "READY=1" and self.ready_at is None:
                    self.ready_at = now
                    self.ready.set()
                elif field == "WATCHDOG=1":
                    self.pings.append(now)
                elif field.startswith("STATUS="):
                    self.last_status = field[7:]


def count(hits: dict, key: str) -> None:
    hits[key] = hits.get(key, 0) + 1


def poke_web(port: int, stop: threading.Event, hits: dict, af_every: float, capture_every: float,
             ready: threading.Event, clock: list) -> None:
    """A viewer that keeps asking for pages and now and then presses the AF button and the
    shutter (failures are counted, never fatal). ``clock`` gets (time, frames) from each
    status page: on a shared machine the frame rate swings, so RSS samples are placed by
    these, not by assuming a steady rate."""
    base = f"http://127.0.0.1:{port}"
    ready.wait()
    t0 = last_af = last_cap = time.monotonic()
    while not stop.wait(2.0):
        now = time.monotonic()
        posts = []
        if af_every and now - last_af >= af_every:
            posts.append("/api/autofocus")
            last_af = now
        if capture_every and now - last_cap >= capture_every and now - t0 > 5:
            posts.append("/api/capture")
            last_cap = now
        for path in WEB_PATHS + posts:
            req = urllib.request.Request(base + path, data=b"{}" if path in posts else None,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    body = r.read(1 << 20)
                count(hits, path)
                if path == "/api/status":
                    clock.append((time.monotonic(), int(json.loads(body)["frames"])))
            except Exception:
                count(hits, path + " failed")


def watch_stream(port: int, stop: threading.Event, hits: dict, ready: threading.Event) -> None:
    """A browser tab on the MJPEG stream: stays connected, reads everything, reconnects."""
    ready.wait()
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stream.mjpg", timeout=10) as r:
                count(hits, "/stream.mjpg connects")
                while not stop.is_set():
                    chunk = r.read(1 << 16)
                    if not chunk:
                        break
                    hits["/stream.mjpg bytes"] = hits.get("/stream.mjpg bytes", 0) + len(chunk)
        except Exception:
            count(hits, "/stream.mjpg failed")
            stop.wait(1.0)


def web_summary(hits: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(hits.items()) if not k.endswith("bytes")) or "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=50_000)
    ap.add_argument("--warmup", type=float, default=0.1,
                    help="share of the frames counted as warm-up (default 0.1)")
    ap.add_argument("--limit-mb", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=1.0, help="RSS sampling period, s")
    ap.add_argument("--source", default="sim")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="stop the run (SIGTERM) after this long and report what it got")
    ap.add_argument("--af-every", type=float, default=60.0,
                    help="press the web autofocus button every S seconds (0: never)")
    ap.add_argument("--capture-every", type=float, default=30.0,
                    help="press the web shutter every S seconds (0: never)")
    ap.add_argument("--progress-every", type=float, default=60.0,
                    help="print a progress line every S seconds")
    args = ap.parse_args()
    if args.frames < 100:
        ap.error("--frames must be at least 100")

    tmp = Path(tempfile.mkdtemp(prefix="focus-assist-soak-"))
    (tmp / "state").mkdir()
    port = free_port()
    config_text, used = build_config(tmp, port)
    (tmp / "config.toml").write_text(config_text)
    help_text = subprocess.run([*cli(), "run", "--help"], capture_output=True, text=True).stdout
    flags: list[str] = []
    for flag, values in FLAGS:
        if flag in help_text:
            flags += [flag, *(v.format(port=port) for v in values)]
    web_on = any(u.startswith("web.") for u in used) or "--web" in flags
    print(f"soak: {args.frames} frames on {args.source}; config {', '.join(used)}; "
          f"flags {' '.join(flags) or '-'}", flush=True)

    drain = NotifyDrain()
    drain.start()
    env = dict(os.environ, NOTIFY_SOCKET=drain.name, WATCHDOG_USEC="10000000",
               STATE_DIRECTORY=str(tmp / "state"), INVOCATION_ID=uuid.uuid4().hex)
    cmd = [*cli(), "run", "--source", args.source, "--frames", str(args.frames),
           "--config", str(tmp / "config.toml"), "--stats", *flags]
    t0 = time.monotonic()
    with open(tmp / "stderr.log", "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, text=True)
    web_stop, web_hits, frame_clock = threading.Event(), {}, []
    if web_on:
        threading.Thread(target=poke_web, args=(port, web_stop, web_hits, args.af_every,
                                                args.capture_every, drain.ready, frame_clock),
                         daemon=True).start()
        threading.Thread(target=watch_stream, args=(port, web_stop, web_hits, drain.ready),
                         daemon=True).start()

    # SIGTERM to the soak itself ends the run early but still reports (like Ctrl-C).
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    samples: list[tuple[float, int]] = []
    stopped_early = False
    last_progress = t0
    try:
        while proc.poll() is None:
            if args.max_seconds is not None and time.monotonic() - t0 > args.max_seconds:
                raise KeyboardInterrupt
            kb = rss_kb(proc.pid)
            if kb is not None:
                samples.append((time.monotonic(), kb))
            time.sleep(args.interval)
            if samples and time.monotonic() - last_progress >= args.progress_every:
                last_progress = time.monotonic()
                print(f"  {time.monotonic() - t0:6.0f} s  RSS {kb / 1024:6.1f} MB  "
                      f"{drain.last_status}  web {web_summary(web_hits)}", flush=True)
    except KeyboardInterrupt:
        stopped_early = True
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    t_end = time.monotonic()
    out = proc.stdout.read() if proc.stdout else ""
    web_stop.set()
    drain.stop = True
    stderr_text = (tmp / "stderr.log").read_text()
    if proc.returncode != 0:
        print(f"soak: focus-assist exited {proc.returncode}\n{stderr_text[-3000:]}", file=sys.stderr)
        return 1
    stats = json.loads(out.strip().splitlines()[-1])

    # Frame index of each sample: interpolated between the status pages' frame counts,
    # else assuming a steady frame rate from READY to exit.
    t_ready = drain.ready_at or t0
    frames = stats.get("frames", args.frames)
    clock = [(t_ready, 0.0), *[(t, float(f)) for t, f in frame_clock], (t_end, float(frames))]
    times = [t for t, _ in clock]

    def frame_at(t: float) -> float:
        i = bisect.bisect_right(times, t)
        if i == 0:
            return 0.0
        if i >= len(clock):
            return float(frames)
        (ta, fa), (tb, fb) = clock[i - 1], clock[i]
        return fa + (fb - fa) * (t - ta) / max(tb - ta, 1e-9)

    # Samples after the status page showed the last frame belong to the shutdown (the
    # process frees its buffers as it exits), not to the run.
    t_done = next((t for t, f in frame_clock if f >= frames), t_end)
    per = [(frame_at(t), kb / 1024) for t, kb in samples if t <= t_done]
    warm = [mb for f, mb in per if f >= args.warmup * frames]
    if len(warm) < 5:
        print("soak: too few samples after warm-up; run more frames", file=sys.stderr)
        return 1
    tail = max(3, len(warm) // 10)
    # Least-squares slope over the post-warm-up samples: a leak climbs steadily, while
    # allocator churn (JPEG and defect buffers freed and re-taken) only wobbles.
    pts = [(f, mb) for f, mb in per if f >= args.warmup * frames]
    fm = statistics.fmean(f for f, _ in pts)
    mm = statistics.fmean(mb for _, mb in pts)
    var = sum((f - fm) ** 2 for f, _ in pts) or 1e-9
    slope = sum((f - fm) * (mb - mm) for f, mb in pts) / var * 10_000
    spread = max(warm) - min(warm)
    growth = statistics.median(warm[-tail:]) - statistics.median(warm[:tail])
    ok = spread <= args.limit_mb
    gaps = [b - a for a, b in zip(drain.pings, drain.pings[1:])]
    figures = {
        "frames": frames,
        "frames_asked": args.frames,
        "stopped_early": stopped_early,
        "wall_s": round(t_end - t0, 1),
        "fps": stats.get("fps"),
        "faults": stats.get("faults"),
        "rss_start_mb": round(per[0][1], 1) if per else None,
        "rss_after_warmup_min_mb": round(min(warm), 1),
        "rss_after_warmup_max_mb": round(max(warm), 1),
        "rss_spread_after_warmup_mb": round(spread, 2),
        "rss_growth_mb": round(growth, 2),
        "rss_slope_mb_per_10k_frames": round(slope, 2),
        "rss_samples": len(samples),
        "watchdog_pings": len(drain.pings),
        "watchdog_max_gap_s": round(max(gaps), 2) if gaps else None,
        "captures": len(list((tmp / "captures").glob("*"))) if (tmp / "captures").exists() else 0,
        "web_hits": web_hits,
        "ms_per_frame_p50": stats.get("ms_per_frame_p50"),
        "ms_per_frame_p95": stats.get("ms_per_frame_p95"),
        "autofocus": {k: v for k, v in (stats.get("af") or {}).items() if k in ("state", "runs", "mode")},
        "capture": {k: v for k, v in (stats.get("capture") or {}).items() if k in ("captures", "skipped")},
        "defect_map": {k: v for k, v in (stats.get("defects") or {}).items()
                       if k in ("confirmed", "tracked", "frames_analysed", "method")},
        "web_frames_encoded": stats.get("web_frames_encoded"),
        "features": used + flags,
        "limit_mb": args.limit_mb,
        "flat": ok,
        # (frame, MB) about every 1% of the run, for a plot or a second look
        "rss_series": [(round(f), round(mb, 1)) for f, mb in per[::max(1, len(per) // 100)]],
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "rss_series"}, indent=2))
    print(f"soak: RSS after warm-up {min(warm):.1f}..{max(warm):.1f} MB (spread {spread:.2f} MB, "
          f"growth {growth:+.2f} MB, trend {slope:+.2f} MB/10k frames) over {frames} frames at {stats.get('fps')} fps: "
          f"{'FLAT' if ok else 'NOT FLAT'} (limit {args.limit_mb} MB)"
          + (f"; stopped early, {frames} of {args.frames} frames" if stopped_early else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"soak: scratch folder kept: {tmp}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
