"""``make demo``: the main job, unattended, on the built-in simulated camera.

Phase 1 plays a person turning the focus ring by hand through focus (capture-when-sharp
saves the sharp moment when that feature is present). Phase 2 lets the focus motor and
autofocus find focus on their own (when present). With a Pi camera attached, ``auto``
uses it instead and the sim-only parts are skipped. Everything lands in one folder.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _run_flags() -> set[str]:
    from device.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {s for a in sub.choices["run"]._actions for s in a.option_strings}


def _run(args: list[str], label: str) -> dict:
    cmd = [sys.executable, "-m", "device", "run", *args, "--headless", "--stats"]
    print(f"\n== {label}\n$ focus-assist run {' '.join(args)} --headless --stats", flush=True)
    t = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit(f"demo: {label} failed with exit status {p.returncode}")
    stats = json.loads(p.stdout.strip().splitlines()[-1])
    stats["_seconds"] = round(time.monotonic() - t, 1)
    return stats


def _focus_curve(jsonl: Path) -> list[float]:
    return [json.loads(line)["focus"] for line in jsonl.read_text().splitlines()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.app.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo-out", help="folder for everything the demo writes")
    ap.add_argument("--frames", type=int, default=240)
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    flags = _run_flags()
    from device.sources.picam import camera_available

    on_pi, why = camera_available()
    source = "picamera2" if on_pi else "sim:ring_speed=9,start_position=0,seed=11"
    print(f"focus-assist demo: {why}; using {'the camera' if on_pi else 'the built-in simulated camera'}")

    # Phase 1: the focus ring turned by hand through focus.
    log1 = out / "manual_focus.jsonl"
    a = ["--source", source, "--frames", str(args.frames), "--log-jsonl", str(log1)]
    if "--capture-when-sharp" in flags:
        a += ["--capture-when-sharp", "--capture-dir", str(out / "captures")]
    s1 = _run(a, "phase 1: turning the focus ring by hand")
    curve = _focus_curve(log1)
    peak = max(range(len(curve)), key=curve.__getitem__)
    lines = [f"phase 1: {s1['frames']} frames at {s1['fps']} fps, "
             f"{s1['ms_per_frame_p50']} ms/frame p50 ({s1['ms_per_frame_p95']} p95); "
             f"focus peaked at frame {peak} ({curve[peak]:.0f} vs {min(curve):.0f} at its worst)"]
    caps = sorted((out / "captures").glob("*.*")) if (out / "captures").is_dir() else []
    images = [c for c in caps if c.suffix.lower() in (".jpg", ".png", ".dng")]
    if "--capture-when-sharp" in flags:
        lines.append(f"captures when sharp: {len(images)} -> {', '.join(c.name for c in images) or 'none'}")

    # Phase 2: autofocus with the simulated motor.
    if not on_pi and {"--motor", "--autofocus"} <= flags:
        log2 = out / "autofocus.jsonl"
        s2 = _run(["--source", "sim:seed=23", "--frames", "150", "--motor", "sim",
                   "--autofocus", "once", "--log-jsonl", str(log2)], "phase 2: autofocus")
        af, sim = s2.get("af", {}), s2.get("sim", {})
        err = abs(sim.get("lens_position", 0) - sim.get("best_position", 0))
        lines.append(f"autofocus: {af.get('state')} after {af.get('frames')} frames and "
                     f"{af.get('moves')} moves; lens {sim.get('lens_position')} vs best "
                     f"{sim.get('best_position')} ({err:.1f} steps off, depth of field "
                     f"{sim.get('depth_of_field')})")
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n== summary")
    for line in lines:
        print(line)
    print(f"outputs: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
