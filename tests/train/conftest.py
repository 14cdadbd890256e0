"""Shared fixtures for the training tests: real photos, the shared data folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import SHARED_DATA

SHARED = SHARED_DATA


@pytest.fixture(scope="session")
def camera_grey() -> np.ndarray:
    """scikit-image's 'camera' photo (a real photograph), grey uint8."""
    from device.common.scenes import load_photo

    return load_photo("camera")[:, :, 0].copy()


@pytest.fixture(scope="session")
def kaggle_dir() -> Path:
    d = SHARED / "kaggle_blur_samples"
    if not d.is_dir():
        pytest.skip(f"../shared/data not present: {d} is missing")
    return d
