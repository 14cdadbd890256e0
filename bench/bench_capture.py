"""Capture-when-sharp on the real PCB sweep and on simulated hand-turned lenses.

    python bench/bench_capture.py [--scale 2] [--sim-seeds 6] [--json OUT]

Targets (issues 7 and 14): every judged region of the three real sweeps beside the project
(``train/sweep_truth.py``: the PCB sweep's switch top and "SW1" text, the Pi board's
heatsink, the USB dongle's text) played as a video, each image held for 5 frames, forward
and then back (two passes): exactly one capture per pass, inside the judged sharp frames,
with the classic rule alone and with the focus net (when ``models/focus.tflite`` loads).

Also reported: the sink's per-frame cost (the loop pays it; writes are on a thread),
the time to save one full-size capture (encode + fsync + link, on the writer thread),
and on the simulator (lens turned through focus at several speeds and seeds) how many
captures each pass gives and how far from best focus the saved frame was, in depths of
field.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from device.capture.sink import CaptureSink  # noqa: E402
from device.config import CaptureConfig, ScoringConfig, SimConfig, load_config  # noqa: E402
from device.scoring.classic import ClassicScorer  # noqa: E402
from device.sources.base import Frame  # noqa: E402
from tests.sweep_truth import REAL_SWEEP_REGIONS  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
HOLD = 5


def cfg(**kw) -> CaptureConfig:
    base = dict(enabled=True, min_free_mb=0.0, cooldown_s=0.0)
    base.update(kw)
    return CaptureConfig(**base)


def scorers(roi):
    classic = ClassicScorer(ScoringConfig(roi=roi))
    out = {"classic": classic}
    try:
        from device.scoring.focus_net import scorer_from_config

        c = load_config(overrides={"scoring": {"roi": list(roi)}})
        cnn = scorer_from_config(c, ClassicScorer(c.scoring))
        if cnn is not classic and type(cnn) is not ClassicScorer:
            out["cnn"] = cnn
    except Exception as exc:
        print(f"(focus CNN unavailable: {exc})", file=sys.stderr)
    return out


def real_sweep(region, scale: int) -> dict:
    """One judged region's sweep played forward then back, each frame held HOLD frames."""
    folder = SHARED / region.sweep
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    imgs = [cv2.imread(str(p)) for p in paths]
    if not imgs or any(m is None for m in imgs):
        sys.exit(f"the real sweep is missing or unreadable: {folder}")
    if scale > 1:
        imgs = [cv2.resize(m, (m.shape[1] // scale, m.shape[0] // scale), interpolation=cv2.INTER_AREA)
                for m in imgs]
    n = len(imgs)
    roi = tuple(v // scale for v in region.roi)
    order = list(range(n)) + list(range(n - 1, -1, -1))
    out = {}
    for name, scorer in scorers(roi).items():
        with tempfile.TemporaryDirectory() as d:
            sink = CaptureSink(cfg(), d)
            sink_ms = []
            with sink:
                for k in range(len(order) * HOLD):
                    img = imgs[order[k // HOLD]]
                    f = Frame(grey=cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), color=img,
                              timestamp=k / 30.0, index=k)
                    r = scorer.score(f)
                    t = time.perf_counter()
                    sink.on_frame(f, r)
                    sink_ms.append(1000 * (time.perf_counter() - t))
            metas = [json.loads(p.read_text()) for p in sorted(Path(d).glob("*.json"))]
        caps = [{"frame": m["frame_index"], "image": order[m["frame_index"] // HOLD],
                 "pass": m["frame_index"] // (n * HOLD),
                 "decided_by": (m.get("peak") or {}).get("decision", {}).get("decided_by"),
                 "sharp_prob": m["scores"].get("sharp_prob")}
                for m in metas]
        per_pass = [sum(c["pass"] == p for c in caps) for p in (0, 1)]
        out[name] = {"captures": caps, "inside_judged_sharp": all(c["image"] in region.good for c in caps),
                     "judged_sharp": sorted(region.good), "per_pass": per_pass,
                     "one_per_pass": per_pass == [1, 1],
                     "sink_ms_p50": round(statistics.median(sink_ms), 4),
                     "sink_ms_max": round(max(sink_ms), 3)}
    return out


def save_latency(shape=(1536, 2048), n=5) -> dict:
    from device.capture.sink import CaptureWriter, encode_image

    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (shape[0] // 8, shape[1] // 8, 3), dtype=np.uint8),
                     (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    times = []
    with tempfile.TemporaryDirectory() as d:
        w = CaptureWriter(Path(d))
        for i in range(n):
            t = time.perf_counter()
            w.write(ext=".jpg", frame_index=i, sidecar={"frame_index": i}, data=encode_image(img, "jpeg", 92))
            times.append(1000 * (time.perf_counter() - t))
    return {"size": f"{shape[1]}x{shape[0]}", "ms_p50": round(statistics.median(times), 1),
            "ms_max": round(max(times), 1)}


def sim(seeds: int) -> dict:
    from device.sources.sim import SimCamera

    rows = []
    scorer = ClassicScorer()
    for seed in range(seeds):
        for steps in (30, 60, 120):        # a fast, medium and slow hand on the ring
            cam = SimCamera(SimConfig(width=320, height=240, seed=seed, start_position=0))
            path = list(np.linspace(0, cam.lens_range, steps)) + list(np.linspace(cam.lens_range, 0, steps))
            with tempfile.TemporaryDirectory() as d:
                with CaptureSink(cfg(), d, source_name=cam.name,
                                 lens_position=lambda: cam.lens_position) as sink:
                    for pos in path:
                        cam.lens_position = pos
                        f = cam.read()
                        sink.on_frame(f, scorer.score(f))
                metas = [json.loads(p.read_text()) for p in Path(d).glob("*.json")]
            passes = [sum((m["frame_index"] < steps) == first for m in metas) for first in (True, False)]
            dof = [abs(m["lens_position"] - cam.best_position) / cam.depth_of_field for m in metas]
            rows.append({"seed": seed, "steps": steps, "per_pass": passes, "dof_off": dof})
    all_dof = [x for r in rows for x in r["dof_off"]]
    step_dof = {s: round(1000 / (s - 1) / 20.0, 2) for s in (30, 60, 120)}
    return {"runs": len(rows), "passes": 2 * len(rows),
            "passes_with_one_capture": sum(p == 1 for r in rows for p in r["per_pass"]),
            "passes_with_more": sum(p > 1 for r in rows for p in r["per_pass"]),
            "median_dof_off": round(statistics.median(all_dof), 2) if all_dof else None,
            "max_dof_off": round(max(all_dof), 2) if all_dof else None,
            "lens_step_in_dof": step_dof}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=2, help="downscale the sweep by this factor")
    ap.add_argument("--sim-seeds", type=int, default=6)
    ap.add_argument("--json")
    args = ap.parse_args()
    out = {"real_sweeps": {r.name: real_sweep(r, args.scale) for r in REAL_SWEEP_REGIONS},
           "save_full_size": save_latency(), "sim": sim(args.sim_seeds)}
    for name, res in out["real_sweeps"].items():
        for scorer, r in res.items():
            print(f"{name:34s} {scorer:8s} captures {[c['image'] for c in r['captures']]} per pass "
                  f"{r['per_pass']} inside judged {r['judged_sharp']}: {r['inside_judged_sharp']}",
                  file=sys.stderr)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
