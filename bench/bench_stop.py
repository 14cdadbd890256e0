"""SIGTERM to exit of the real ``focus-assist run``, case by case (issue 19, F6 and F18).

    python bench/bench_stop.py [--runs 3] [--json OUT]

The promise (docs/service.md): exit 0 within 2 s of SIGTERM, the defect map and the motor
position written first; the unit SIGKILLs at 10 s. Each case starts the service under a
pretend systemd (its own notify socket), waits for READY and a few frames, deletes the
state files, sends SIGTERM and times the exit:

- ``plain``: the simulated camera, nothing stuck;
- ``hung sim``: the simulated camera stops delivering (``sim:hang_after``);
- ``stuck read``: an MJPEG stream that stalls with its socket open, so OpenCV's grabber
  sits inside ``read()`` (F18; 3.1-3.3 s before the fix);
- ``full queue``: 24 web-shutter presses of 2028x1520 PNGs, then SIGTERM (F6; 4.2 s
  before the fix, 30 s with ``burst = 20``).

Prints one row per case: the seconds (min, median, max), the ratio of the worst to the
2 s promise, and whether both state files were written again by the stop.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.systemd.test_service_process import START_TIMEOUT_S, Listener, start  # noqa: E402
from tests.systemd.test_stop_process import StallingCamera  # noqa: E402

PROMISE_S = 2.0
BASE = ("[models]\nenable_focus = false\nenable_defects = false\n"
        "[defects]\nlive = true\nsave_interval_s = 600\n"
        '[motor]\nenabled = true\ndriver = "stepdir"\nstep_pin = 17\ndir_pin = 27\n'
        "enable_pin = 22\n")


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def _shutter(port: int, presses: int) -> int:
    queued = 0
    for _ in range(presses):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/api/capture", b"{}", {"Content-Type": "application/json"})
        queued += bool(json.loads(c.getresponse().read())["capture"]["ok"])
        c.close()
    return queued


def one_run(case: str, work: Path) -> tuple[float, bool, int]:
    """(seconds from SIGTERM to exit, state files written, exit status)."""
    state = work / "state"
    cfg = work / "config.toml"
    text = BASE + f'[service]\nstate_dir = "{state}"\n'
    extra: list[str] = ["--headless"]
    cam = None
    if case == "plain":
        source = "sim"
        text += "[sim]\nfps = 25.0\nwidth = 640\nheight = 480\n"
    elif case == "hung sim":
        source = "sim:hang_after=40"
        text += "[sim]\nfps = 25.0\nwidth = 640\nheight = 480\n"
    elif case == "stuck read":
        cam = StallingCamera(frames=60)
        source = f"video:http://127.0.0.1:{cam.port}/x.mjpg"
        text += "[source]\ntimeout_s = 30\n"
    else:
        port = _free_port()
        source = "sim"
        text += ('[capture]\nformat = "png"\nmin_free_mb = 0.0\n'
                 "[sim]\nfps = 10.0\nwidth = 2028\nheight = 1520\n")
        extra += ["--web", f"127.0.0.1:{port}", "--capture-dir", str(work / "cap")]
    cfg.write_text(text)
    lis = Listener(work)
    proc = start(lis, source, cfg, *extra)
    try:
        lis.wait_for("READY=1", START_TIMEOUT_S, proc)
        lis.wait_for("WATCHDOG=1", 60, proc)
        if case == "hung sim":
            time.sleep(2.5)                      # past frame 40: the camera hangs
        elif case == "stuck read":
            cam.stalled.wait(60)
            time.sleep(1.0)
        elif case == "full queue":
            _shutter(port, 24)
        else:
            time.sleep(1.0)
        for name in ("defects.json", "motor-position.json"):
            (state / name).unlink(missing_ok=True)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        took = time.monotonic() - t0
        saved = all((state / n).exists() for n in ("defects.json", "motor-position.json"))
        return took, saved, proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        lis.close()
        if cam is not None:
            cam.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="write the rows here too")
    args = ap.parse_args()
    os.environ["GPIOZERO_PIN_FACTORY"] = "mock"
    rows = []
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'case':<12} {'min s':>6} {'median s':>9} {'max s':>6} {'max/2 s':>8} "
          f"{'state saved':>12} {'exit':>5}")
    for case in ("plain", "hung sim", "stuck read", "full queue"):
        times, saved, codes = [], [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="fa-stop-") as tmp:
                took, ok, rc = one_run(case, Path(tmp))
            times.append(took)
            saved.append(ok)
            codes.append(rc)
        row = {"case": case, "min_s": round(min(times), 3),
               "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
               "max_over_promise": round(max(times) / PROMISE_S, 2),
               "state_saved": f"{sum(saved)}/{len(saved)}", "exit": sorted(set(codes))}
        rows.append(row)
        print(f"{case:<12} {row['min_s']:>6.2f} {row['median_s']:>9.2f} {row['max_s']:>6.2f} "
              f"{row['max_over_promise']:>8.2f} {row['state_saved']:>12} "
              f"{','.join(map(str, row['exit'])):>5}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
