"""The optimised classic measures give the textbook values (the straightforward numpy
definitions, kept here as the reference) on real photographs and the real sweeps."""
import cv2
import numpy as np
import pytest

from device.scoring.measures import score_frame, working_image
from tests.conftest import shared_data


def reference(grey, roi=None, grid=(6, 8), native=False):
    """The measures as first written: plain numpy, one temporary per step."""
    work, gain = working_image(grey, native)
    gx = cv2.Sobel(work, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(work, cv2.CV_32F, 0, 1, ksize=3)
    energy = cv2.magnitude(gx, gy) ** 2
    mean = float(work.mean())
    norm = lambda e: 1000.0 * gain * e / (mean ** 2 + 16.0)    # noqa: E731
    rows, cols = grid
    h, w = energy.shape
    th, tw = h // rows, w // cols
    tiles = norm(energy[:rows * th, :cols * tw].reshape(rows, th, cols, tw).mean(axis=(1, 3)))
    if roi is None:
        sy = sx = slice(None)
    else:
        fy, fx = work.shape[0] / grey.shape[0], work.shape[1] / grey.shape[1]
        x, y, rw, rh = roi
        y0, x0 = int(np.floor(y * fy)), int(np.floor(x * fx))
        sy = slice(y0, max(y0 + 3, int(np.ceil((y + rh) * fy))))
        sx = slice(x0, max(x0 + 3, int(np.ceil((x + rw) * fx))))
    wk, en = work[sy, sx], energy[sy, sx]
    lap = cv2.Laplacian(wk, cv2.CV_32F, ksize=1)
    dxx = cv2.sepFilter2D(wk, cv2.CV_32F, np.float32([1, -2, 1]), np.float32([1]))
    dyy = cv2.sepFilter2D(wk, cv2.CV_32F, np.float32([1]), np.float32([1, -2, 1]))
    measures = {
        "tenengrad": float(en.astype(np.float64).mean()),
        "laplacian_var": float(lap.astype(np.float64).var()),
        "modified_laplacian": float(np.abs(dxx).astype(np.float64).mean() + np.abs(dyy).astype(np.float64).mean()),
        "brenner": float(np.square((wk[:, 2:] - wk[:, :-2]).astype(np.float64)).mean()),
    }
    return norm(measures["tenengrad"]), measures, tiles


def _check(grey, roi=None, native=False):
    got = score_frame(grey, roi, (6, 8), native)
    focus, measures, tiles = reference(grey, roi, (6, 8), native)
    assert got.focus == pytest.approx(focus, rel=1e-5)
    for k, v in measures.items():
        assert got.measures[k] == pytest.approx(v, rel=1e-5), k
    np.testing.assert_allclose(got.tile_map, tiles, rtol=1e-4)


@pytest.mark.parametrize("roi", [None, (100, 120, 200, 150), (0, 0, 9, 9)])
def test_measures_match_the_reference_on_a_photo(photo_grey, roi):
    _check(photo_grey, roi)
    _check(cv2.GaussianBlur(photo_grey, (0, 0), 3.0), roi)    # the blurred end of a sweep


def test_measures_match_the_reference_on_the_real_sweep():
    folder = shared_data("focus_sweeps/pi_board_macro")
    for name in ("pi_board_macro_000.jpg", "pi_board_macro_023.jpg", "pi_board_macro_048.jpg"):
        grey = cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE)[:540]
        _check(grey)                                  # resampled to the lores scale
        _check(grey, native=True)
        _check(cv2.resize(grey, (640, 360), interpolation=cv2.INTER_AREA), (200, 100, 240, 160))
