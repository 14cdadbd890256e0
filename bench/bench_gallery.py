"""The captures gallery's cost: a thumbnail (reduced-size JPEG decoding vs a full decode
and resize, and a cache hit) and the listing of a folder of captures with sidecars.

    python bench/bench_gallery.py [--repeats 7] [--captures 200]

Captures are a real photograph (scikit-image's astronaut) at 640x480 (the simulated
camera's frame) and at 4056x3040 (the HQ camera's full-resolution still), JPEG q92 as the
capture feature writes them. CPU milliseconds per call, the best of ``repeats`` passes
that take turns across the variants (other jobs share the cores).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from device.viewfinder.web.gallery import THUMB_PX, Gallery, make_thumbnail  # noqa: E402


def photo(w: int, h: int) -> bytes:
    from skimage import data

    img = cv2.resize(data.astronaut()[..., ::-1], (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def full_decode_thumb(data: bytes) -> bytes:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    k = THUMB_PX / max(h, w)
    img = cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 75])[1].tobytes()


def cpu_ms(fn, n: int) -> float:
    t = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - t) * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--captures", type=int, default=200)
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for w, h in ((640, 480), (4056, 3040)):
            data = photo(w, h)
            name = f"focus-{w}x{h}.jpg"
            (d / name).write_bytes(data)
            g = Gallery(d)
            g.thumbnail(name)           # fill the cache
            variants = {
                f"{w}x{h} ({len(data) // 1024} kB): reduced decode (served)": lambda: make_thumbnail(data),
                f"{w}x{h}: full decode + resize": lambda: full_decode_thumb(data),
                f"{w}x{h}: cache hit (open, fstat, lookup)": lambda: g.thumbnail(name),
            }
            best = {k: float("inf") for k in variants}
            for _ in range(args.repeats):
                for k, fn in variants.items():
                    best[k] = min(best[k], cpu_ms(fn, 3 if "4056" in k and "hit" not in k else 10))
            rows.update(best)
        side = {"trigger": "trap", "lens_position": 500.0,
                "scores": {"focus": 12.5, "label": "sharp", "sharp_prob": 0.93},
                "peak": {"decision": {"decided_by": "net_agrees"}}}
        small = photo(64, 48)
        for i in range(args.captures):
            (d / f"focus-20260101-000000-f{i:06d}.jpg").write_bytes(small)
            (d / f"focus-20260101-000000-f{i:06d}.json").write_text(json.dumps(side))
        g = Gallery(d)
        t = time.thread_time()
        g.listing()
        rows[f"listing of {args.captures} captures: first (reads every sidecar)"] = (time.thread_time() - t) * 1000
        rows[f"listing of {args.captures} captures: again (sidecars cached)"] = min(
            cpu_ms(g.listing, 3) for _ in range(args.repeats))
    width = max(map(len, rows))
    print(f"{'':{width}}  CPU ms")
    for k, v in rows.items():
        print(f"{k:{width}}  {v:7.2f}")
    for size in ("640x480", "4056x3040"):
        red = next(v for k, v in rows.items() if k.startswith(size) and "reduced" in k)
        full = next(v for k, v in rows.items() if k.startswith(size) and "full" in k)
        print(f"{size}: reduced decode costs {red / full:.2f}x of a full decode")


if __name__ == "__main__":
    main()
