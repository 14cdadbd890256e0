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
