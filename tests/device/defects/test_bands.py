"""The defect map works in horizontal bands: every result is the whole frame's.

The references below are the whole-frame computations as they were before the bands
(frame-sized work images at once), kept verbatim so that any band height, including
ones that cut through a defect's blob or its ring, is checked against them exactly, on
real photographs and a real sweep frame with defects set in the Bayer mosaic.
"""
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.defects import candidates, persistence
from device.defects.candidates import RING, MARGIN, band_rows, frame_candidates
from device.defects.persistence import (BLOCK, N_BLOCKS, OFFSETS, DefectMap, grid_points,
                                        neighbourhoods, noise_sigma)
from tests.conftest import shared_data
from tests.device.bayer_defects import camera_frame

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image photos are needed")


def whole_frame_candidates(bgr, threshold=16.0, spread_gain=0.3):
    ring_max = cv2.dilate(bgr, RING)
    ring_min = cv2.erode(bgr, RING)
    up = cv2.subtract(bgr, ring_max)
    down = cv2.subtract(ring_min, bgr)
    excess = cv2.add(up, down)
    e0, e1, e2 = cv2.split(excess)
    ys, xs = np.nonzero(cv2.max(cv2.max(e0, e1), e2) > threshold)
    spread = (ring_max[ys, xs].astype(np.float32) - ring_min[ys, xs])
    ratio = excess[ys, xs] / (np.float32(threshold) + np.float32(spread_gain) * spread)
    strength = ratio.max(axis=1)
    keep = (strength > 1.0) & (ys >= MARGIN) & (xs >= MARGIN) & \
        (ys < bgr.shape[0] - MARGIN) & (xs < bgr.shape[1] - MARGIN)
    ys, xs, ratio, strength = ys[keep], xs[keep], ratio[keep], strength[keep]
    best = np.zeros(bgr.shape[:2], np.float32)
    best[ys, xs] = strength
    peak = strength >= cv2.dilate(best, np.ones((3, 3), np.uint8))[ys, xs]
    ys, xs, ratio, strength = ys[peak], xs[peak], ratio[peak], strength[peak]
    ch = ratio.argmax(axis=1)
    codes = np.where(up[ys, xs, ch] > 0, ch, ch + 3)
    return ys, xs, codes, strength, bgr[ys, xs, ch]


def whole_frame_neighbourhoods(bgr, points):
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    mean = cv2.blur(grey, (BLOCK, BLOCK))
    texture = cv2.blur(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), (BLOCK, BLOCK))
    h, w = grey.shape
    out = []
    for ys, xs in points:
        yy = np.clip(np.asarray(ys, np.int64)[:, None] + OFFSETS[:, 0], 0, h - 1)
        xx = np.clip(np.asarray(xs, np.int64)[:, None] + OFFSETS[:, 1], 0, w - 1)
        out.append(np.concatenate([mean[yy, xx], texture[yy, xx]], axis=1))
    return noise_sigma(grey), out


def sweep_frame():
    files = sorted(shared_data("focus_sweeps").joinpath("pi_board_macro").glob("*.jpg"))
    img = cv2.imread(str(files[len(files) // 2]), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(img[:540, 300:300 + 720])       # above the half-frame join


DEFECTS = [(37, 2, "hot"), (120, 47, "dead"), (121, 64, "stuck"), (301, 95, "hot"),
           (200, 96, "hot"), (5, 130, "dead"), (410, 161, "stuck"), (64, 191, "hot")]


def frames():
    """Real photos (odd sizes too) and a real sweep frame, with defects in the mosaic."""
    astro = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    coffee = cv2.cvtColor(skimage_data.coffee(), cv2.COLOR_RGB2BGR)[:397, :533]
    return [pytest.param(camera_frame(astro, DEFECTS), id="astronaut"),
            pytest.param(camera_frame(coffee, DEFECTS), id="coffee-533x397"),
            pytest.param(camera_frame(sweep_frame(), DEFECTS + [(700, 530, "hot")]), id="pi-board-sweep")]


@pytest.mark.parametrize("bgr", frames())
def test_band_candidates_are_the_whole_frames(bgr):
    for threshold in (16.0, 8.0):       # the map's rule and the defect net's
        ref = whole_frame_candidates(bgr, threshold)
        assert len(ref[0]) >= 20, "the photo must give the rule something to find"
        found = set(zip(ref[1].tolist(), ref[0].tolist()))
        assert sum(any(abs(x - a) <= 1 and abs(y - b) <= 1 for a, b in found)
                   for x, y, _ in DEFECTS) >= 3, "the set defects must be among the candidates"
        for rows in (1, 2, 3, 7, 16, 45, band_rows(bgr.shape[1]), bgr.shape[0]):
            got = frame_candidates(bgr, threshold, rows=rows)
            for a, b in zip(ref, got):
                np.testing.assert_array_equal(a, b, err_msg=f"{rows}-row bands")
                assert a.dtype == b.dtype


@pytest.mark.parametrize("bgr", frames())
def test_band_neighbourhoods_are_the_whole_frames(bgr):
    h, w = bgr.shape[:2]
    ys, xs, *_ = whole_frame_candidates(bgr)
    # The border, where the blocks are clipped to the frame, and every candidate.
    edge = (np.array([0, 0, h - 1, h - 1, 3, h - 4]), np.array([0, w - 1, 0, w - 1, 2, w - 3]))
    points = [grid_points((h, w)), (ys, xs), edge, (ys[:0], xs[:0])]
    sigma, ref = whole_frame_neighbourhoods(bgr, points)
    assert sigma > 0
    for rows in (1, 4, 13, 32, band_rows(w), h):
        got_sigma, got = neighbourhoods(bgr, points, rows=rows)
        assert got_sigma == sigma
        for a, b in zip(ref, got):
            assert b.shape == (len(a), 2 * N_BLOCKS) and b.dtype == np.float32
            np.testing.assert_array_equal(a, b, err_msg=f"{rows}-row bands")


def test_a_map_fed_in_bands_confirms_what_the_whole_frame_map_does(monkeypatch):
    """The persistence rule end to end on a panning real photo with defects: the map built
    from banded passes is the one the whole-frame passes build, track for track."""
    from tests.device.bayer_defects import panning_sequence

    base = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    seq = panning_sequence(base, 8, size=(240, 320), defects=[(40, 50, "hot"), (201, 120, "dead")])
    banded = DefectMap(min_hits=3)
    for f in seq:
        banded.add(f)
    whole = DefectMap(min_hits=3)
    monkeypatch.setattr(persistence, "frame_candidates", whole_frame_candidates)
    monkeypatch.setattr(persistence, "neighbourhoods",
                        lambda img, pts, rows=0: whole_frame_neighbourhoods(img, pts))
    for f in seq:
        whole.add(f)
    for col in DefectMap._COLUMNS:
        np.testing.assert_array_equal(getattr(banded, col), getattr(whole, col), err_msg=col)
    assert banded.report() == whole.report()
    assert (201, 120) in {(d["x"], d["y"]) for d in banded.confirmed()}   # not a trivial map


@pytest.mark.parametrize("name", ["camera", "coffee", "astronaut"])
@pytest.mark.parametrize("crop", [(0, 0), (1, 0), (0, 1), (1, 1)])   # odd and even counts
def test_noise_sigma_is_the_median_based_estimate(name, crop):
    # noise_sigma takes its median by np.partition (np.median would import numpy.ma):
    # the value must stay np.median's, bit for bit, on real photographs.
    img = getattr(skimage_data, name)()
    grey = np.ascontiguousarray((img if img.ndim == 2 else img[..., 1])[crop[0]:, crop[1]:])
    r = cv2.filter2D(grey, cv2.CV_32F, persistence._NOISE_KERNEL)[1:-1:3, 1:-1:3]
    assert noise_sigma(grey) == 1.4826 * float(np.median(np.abs(r))) / 6.0
