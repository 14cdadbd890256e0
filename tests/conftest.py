"""Shared fixtures: real photographs only (scikit-image's bundled photos, ../shared/data)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pcb_sweep_paths() -> list[Path]:
    """The 10 frames of the real PCB focus sweep, in lens order (skips when absent)."""
    paths = sorted(shared_data("pcb_focus_sweep").glob("pcb_*.JPG"))
    assert len(paths) == 10, paths
    return paths


def loaded_by_numpy_and_opencv(names) -> set:
    """Which of ``names`` (modules) ``import numpy, cv2`` loads by itself, in a fresh
    interpreter: those a footprint test cannot hold against the device's own code (numpy
    1.x's ``numpy.random`` imports ``secrets``, hence ``hmac``, ``hashlib`` and OpenSSL's
    ``_hashlib``; numpy 2 does not)."""
    import subprocess
    import sys

    code = "import sys, numpy, cv2; print(' '.join(n for n in sys.argv[1:] if n in sys.modules))"
    p = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return set(p.stdout.split())


def shared_data(sub: str) -> Path:
    """A folder of ../shared/data, or a visible skip when it is absent."""
    p = SHARED_DATA / sub
    if not p.is_dir():
        pytest.skip(f"../shared/data/{sub} not present: real-photo check skipped")
    return p


@pytest.fixture
def photo_grey():
    """A real photograph (scikit-image 'camera'), grey uint8; skips visibly without skimage."""
    data = pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    return data.camera()


@pytest.fixture
def photo_bgr():
    data = pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    import cv2

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
