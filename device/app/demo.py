"""``make demo``: the main job, unattended, on the built-in simulated camera.

Phase 1 plays a person turning the focus ring by hand through focus (capture-when-sharp
saves the sharp moment when that feature is present). Phase 2 lets the focus motor and
autofocus find focus on their own (when present). Phase 3 focuses a simulated telescope
on stars: the star autofocus minimises the stars' HFR along a V-curve. With a Pi camera attached, ``auto``
uses it instead and the sim-only parts are skipped. Everything lands in one folder,
with pictures (viewfinder snapshots, focus-curve and autofocus plots) and an
``index.html`` that shows them beside the summary.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional


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


def run_capture_dir(out: Path, when: float) -> Path:
    """This run's capture folder under ``out/captures``: an earlier demo's captures stay
    where they are but are not counted as this run's."""
    base = out / "captures" / time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def _capture_frames(folder: Path) -> list[int]:
    """The frame index of each capture, from its sidecar."""
    out = []
    for side in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(int(json.loads(side.read_text())["frame_index"]))
        except (ValueError, KeyError, TypeError, OSError):
            continue
    return sorted(out)


def _pictures(out: Path, manual_spec: Optional[str], frames: int, curve: list[float],
              captures: list[int], af_spec: Optional[str]) -> list[tuple[str, str]]:
    """Plot the manual pass's curve and captures (from the real run's log and sidecars);
    on the simulator, replay each pass in this process to draw what the viewfinder showed
    (a real camera cannot replay the user's hand on the ring)."""
    from device.app import demo_pictures as dp

    dp.write_png(out / "focus_curve.png", dp.focus_curve_plot(curve, captures))
    shown = [("focus_curve.png", "Focus per frame of the manual pass; green lines: captures")]
    if manual_spec is None:
        return shown
    rec = dp.replay(manual_spec, {}, frames)
    dp.write_png(out / "viewfinder_at_peak.png", rec.peak_picture)
    dp.write_png(out / "viewfinder_off_focus.png", rec.off_picture)
    shown += [("viewfinder_at_peak.png", f"Viewfinder at the focus peak (frame {rec.peak_frame}): "
                                         "peaking, tile heat map, zoom inset and HUD"),
              ("viewfinder_off_focus.png", f"Viewfinder off focus (frame {rec.off_frame})")]
    if af_spec is not None:
        af = dp.replay(af_spec, {"motor": {"enabled": True, "driver": "sim"},
                                 "autofocus": {"enabled": True, "mode": "once"}}, 150)
        from device.sources import open_source

        lens = open_source(af_spec)
        try:
            best, depth = lens.best_position, lens.depth_of_field
        finally:
            lens.close()
        dp.write_png(out / "autofocus_path.png", dp.autofocus_plot(af.lens, af.focus, best, depth))
        shown.append(("autofocus_path.png", "Autofocus: lens position and focus per frame"))
    return shown


STAR_SPEC = "sim:scene=stars,seed=31,best_position=520,start_position=420"
STAR_FRAMES = 60        # the star autofocus needs about 30 (bench/bench_stars.py)


def _star_picture(out: Path, spec: str) -> tuple[str, str]:
    """Replay the star autofocus to plot its V-curve (the run's own log has no HFR)."""
    from device.app import demo_pictures as dp

    points, state, best, _depth = dp.star_replay(spec, STAR_FRAMES)
    final = points[-1][0] if points else None
    dp.write_png(out / "star_vcurve.png", dp.vcurve_plot(points, best, final))
    return ("star_vcurve.png", f"Star autofocus ({state}): HFR against lens position on the "
                               "simulated sky, the V-curve fit, the true best position in green")


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
    cap_dir = run_capture_dir(out, time.time())
    a = ["--source", source, "--frames", str(args.frames), "--log-jsonl", str(log1)]
    if "--capture-when-sharp" in flags:
        cap_dir.mkdir(parents=True)
        a += ["--capture-when-sharp", "--capture-dir", str(cap_dir)]
    s1 = _run(a, "phase 1: turning the focus ring by hand")
    curve = _focus_curve(log1)
    peak = max(range(len(curve)), key=curve.__getitem__)
    lines = [f"phase 1: {s1['frames']} frames at {s1['fps']} fps, "
             f"{s1['ms_per_frame_p50']} ms/frame p50 ({s1['ms_per_frame_p95']} p95); "
             f"focus peaked at frame {peak} ({curve[peak]:.0f} vs {min(curve):.0f} at its worst)"]
    caps = sorted(cap_dir.glob("*.*")) if cap_dir.is_dir() else []
    images = [c for c in caps if c.suffix.lower() in (".jpg", ".png", ".dng")]
    captures = _capture_frames(cap_dir)
    if "--capture-when-sharp" in flags:
        lines.append(f"captures when sharp: {len(images)} -> {', '.join(c.name for c in images) or 'none'}")

    # Phase 2: autofocus with the simulated motor.
    af_spec = None
    if not on_pi and {"--motor", "--autofocus"} <= flags:
        af_spec = "sim:seed=23"
        log2 = out / "autofocus.jsonl"
        s2 = _run(["--source", af_spec, "--frames", "150", "--motor", "sim",
                   "--autofocus", "once", "--log-jsonl", str(log2)], "phase 2: autofocus")
        af, sim = s2.get("af", {}), s2.get("sim", {})
        err = abs(sim.get("lens_position", 0) - sim.get("best_position", 0))
        lines.append(f"autofocus: {af.get('state')} after {af.get('frames')} frames and "
                     f"{af.get('moves')} moves; lens {sim.get('lens_position')} vs best "
                     f"{sim.get('best_position')} ({err:.1f} steps off, depth of field "
                     f"{sim.get('depth_of_field')})")
    # Phase 3: focusing on stars (issue 16), the star autofocus on the simulated sky.
    star_spec = None
    if not on_pi and {"--motor", "--autofocus", "--measure"} <= flags:
        star_spec = STAR_SPEC
        s3 = _run(["--source", star_spec, "--frames", str(STAR_FRAMES), "--motor", "sim",
                   "--autofocus", "once", "--measure", "hfr"], "phase 3: star autofocus (HFR V-curve)")
        af, sim = s3.get("af", {}), s3.get("sim", {})
        lines.append(f"star autofocus: {af.get('state')} after {af.get('frames')} frames "
                     f"({af.get('reason')}); lens {sim.get('lens_position')} vs best "
                     f"{sim.get('best_position')}, {s3['_seconds']} s")
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n== pictures" + ("" if on_pi else ": replaying both passes to draw what the viewfinder showed"),
          flush=True)
    shown = _pictures(out, None if on_pi else source, args.frames, curve, captures, af_spec)
    if star_spec is not None:
        shown.append(_star_picture(out, star_spec))
    from device.app.demo_pictures import write_index

    write_index(out, lines, shown)
    print("\n== summary")
    for line in lines:
        print(line)
    print(f"outputs: {out}  (open {out / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
