import numpy as np
import pytest

from device.errors import InputError
from device.common.scenes import PHOTO_NAMES, dead_leaves, load_photo


def test_dead_leaves_is_seeded_bgr_uint8():
    a = dead_leaves(120, 160, 3)
    b = dead_leaves(120, 160, np.random.default_rng(3))
    c = dead_leaves(120, 160, 4)
    assert a.shape == (120, 160, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dead_leaves_grey_and_textured_at_many_scales():
    g = dead_leaves(256, 256, 1, color=False)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    # occluding discs of all sizes: edges at fine scale and structure at coarse scale
    import cv2
    grey = g[..., 0].astype(np.float32)
    fine = np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean()
    coarse = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).std()
    assert fine > 5.0 and coarse > 10.0
    # many distinct regions (discs), not a handful
    assert len(np.unique(g[..., 0])) > 100


def test_dead_leaves_rejects_bad_size():
    with pytest.raises(InputError):
        dead_leaves(0, 10, 1)


def test_load_photo_is_bgr_of_skimage_rgb():
    skdata = pytest.importorskip("skimage.data")
    bgr = load_photo("astronaut")
    assert np.array_equal(bgr[..., ::-1], skdata.astronaut())
    grey = load_photo("camera")
    assert grey.shape == skdata.camera().shape + (3,)
    assert np.array_equal(grey[..., 1], skdata.camera())


def test_photo_names_exclude_the_motion_blurred_clock():
    assert "clock" not in PHOTO_NAMES and "camera" in PHOTO_NAMES


def test_load_photo_unknown_name_is_input_error():
    with pytest.raises(InputError, match="unknown photo"):
        load_photo("not_a_photo")
