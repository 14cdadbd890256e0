"""A camera that does not move: defects confirmed during a real focus sweep (issue 15).

The frames are a real macro focus sweep (../shared/data/focus_sweeps/usb_dongle_macro)
with defective photosites set in their Bayer mosaic, demosaiced and stored as PNG: the
camera never moves, only the focus does. Each frame is two half-frames joined at row
540, a scene edge that is in every frame and must not become a defect.
"""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from device.defects.persistence import DefectMap
from device.defects.sensor_check import match
from tests.conftest import REPO, shared_data
from tests.device.bayer_defects import evenly_spaced, fixed_camera_frames, random_sites

N_FRAMES = 8


@pytest.fixture(scope="module")
def sweep():
    paths = evenly_spaced(sorted(shared_data("focus_sweeps/usb_dongle_macro").glob("*.jpg")), N_FRAMES)
    images = [cv2.imread(str(p)) for p in paths]
    sites = random_sites(np.random.default_rng(0), images[0].shape[:2], 40)
    frames, visible = fixed_camera_frames(images, sites)
    clean, _ = fixed_camera_frames(images)
    return sites, frames, visible, clean


def test_a_focus_sweep_on_a_tripod_confirms_the_defects_and_nothing_else(sweep, tmp_path):
    sites, frames, visible, _ = sweep
    paths = []
    for i, f in enumerate(frames):
        paths.append(tmp_path / f"f{i}.png")
        cv2.imwrite(str(paths[-1]), f)
    p = subprocess.run([sys.executable, "-m", "device", "defects", "--json", "--sequence", *paths],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["frames"] == N_FRAMES and out["method"] == "classic"
    truth = [(y, x) for (y, x, _, _), v in zip(sites, visible) if v >= N_FRAMES / 2]
    hits, _ = match(out["defects"], truth)
    _, false = match(out["defects"], [(y, x) for y, x, _, _ in sites])   # a faint one found is no false one
    assert len(truth) >= 20
    assert hits >= 0.9 * len(truth), (hits, len(truth), out)
    assert false == 0, out["defects"]


def test_the_same_sweep_without_defects_confirms_nothing_not_even_at_the_seam(sweep):
    _, _, _, clean = sweep
    m = DefectMap()
    for f in clean:
        m.add(f)
    assert m.confirmed() == [] and m.undecided() == []


def test_a_tripod_on_a_still_scene_says_it_cannot_decide(sweep, tmp_path):
    """The same frame again and again: the defects persist but nothing around them
    changes, so none is confirmed and each is listed as undecided (with the bright points
    of the scene, which persist as well: that is what cannot be decided), with one line
    on stderr."""
    sites, frames, visible, _ = sweep
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), frames[N_FRAMES // 2])
    p = subprocess.run([sys.executable, "-m", "device", "defects", "--json", "--sequence", *[path] * 6],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["defects"] == []
    truth = [(y, x) for (y, x, _, _), v in zip(sites, visible) if v >= N_FRAMES / 2]
    hits, _ = match(out["undecided"], truth)
    assert hits >= 0.9 * len(truth), out["undecided"]
    assert all("dark-frame check" in d["reason"] for d in out["undecided"])
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "undecided" in err[0] and "--dark" in err[0], p.stderr


def test_a_frame_size_change_in_a_sequence_is_one_warning_line_and_a_new_map(sweep, tmp_path):
    """The same behaviour as the live map: a new size starts a new map (no traceback, no
    exit 2); the report covers the frames of the last size and says so."""
    _, frames, _, _ = sweep
    paths = []
    for i, f in enumerate(frames[:2] + [np.ascontiguousarray(f[:540]) for f in frames[2:5]]):
        paths.append(tmp_path / f"f{i}.png")
        cv2.imwrite(str(paths[-1]), f)
    p = subprocess.run([sys.executable, "-m", "device", "defects", "--json", "--sequence", *paths],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["frames"] == 3
    warn = [ln for ln in p.stderr.splitlines() if "frame size changed" in ln]
    assert len(warn) == 1 and "Traceback" not in p.stderr, p.stderr
