"""A camera-like video for the benchmarks: the real Pi board macro sweep as a 640x480 clip.

The sweep's frames are 1920x1080 made of two half-frames joined at row 540 (see
``/work/shared/data/SOURCES.md``), so only a 4:3 crop of the top half is used: the lens
runs through focus and back (a person turning the ring), as many times as needed.
Written under a temporary folder with OpenCV's VideoWriter (MJPG), never into the repo.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SWEEP = "focus_sweeps/pi_board_macro"


def sweep_frames(width: int = 640, height: int = 480, root: Path = SHARED) -> list:
    """The sweep's frames as BGR ``width x height`` crops of the top half, in lens order."""
    folder = root / SWEEP
    files = sorted(folder.glob("*.jpg"))
    if not files:
        raise SystemExit(f"{folder}: the real focus sweep is missing (needs /work/shared/data)")
    out = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        top = img[: img.shape[0] // 2]                      # above the join at row 540
        h = top.shape[0]
        w = h * width // height
        x0 = (top.shape[1] - w) // 2
        out.append(cv2.resize(top[:, x0:x0 + w], (width, height), interpolation=cv2.INTER_AREA))
    return out


def make_sweep_video(path: Path, n_frames: int = 600, fps: float = 30.0,
                     width: int = 640, height: int = 480) -> Path:
    """Write ``n_frames`` of the sweep played forward and back to ``path`` (an .avi)."""
    frames = sweep_frames(width, height)
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not vw.isOpened():
        raise SystemExit(f"{path}: OpenCV cannot write an MJPG video here")
    try:
        for i in range(n_frames):
            vw.write(frames[order[i % len(order)]])
    finally:
        vw.release()
    return path


if __name__ == "__main__":
    print(make_sweep_video(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("sweep.avi")))
