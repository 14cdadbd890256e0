"""Real training tiles from a real focus sweep, labelled by the sweep's own curves."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.common.optics import disc_psf
from device.common.preprocess import FOCUS_TILE
from device.errors import InputError
from tests.conftest import shared_data
from train import data as D
from train import sweep_labels as SL
from train.sweep_truth import HEATSINK_TOP


@pytest.fixture(scope="module")
def pi_board_every_2nd(tmp_path_factory):
    """Every second frame of the real Pi board sweep (judged sharpest at 23 of 49)."""
    src = sorted(shared_data("focus_sweeps/pi_board_macro").glob("*.jpg"))
    folder = tmp_path_factory.mktemp("sweep")
    for i, f in enumerate(src[::2]):
        (folder / f"f{i:03d}.jpg").symlink_to(f)
    return folder, SL.label_sweep(folder)


def test_sharp_labels_sit_at_the_judged_peak_and_blur_grows_away_from_it(pi_board_every_2nd):
    _, lab = pi_board_every_2nd
    assert lab.count("sharp") >= 20 and lab.count("defocus") >= 100
    best = HEATSINK_TOP.best / 2                          # frame 23 of the full sweep
    sharp_frames = lab.frame[lab.classes == 0]
    assert abs(np.median(sharp_frames) - best) <= 1.5
    assert np.all(np.abs(sharp_frames - best) <= 5)
    d = lab.classes == 1
    dist = np.abs(lab.frame[d] - best)
    near, far = lab.blur_px[d][dist <= 6], lab.blur_px[d][dist >= 12]
    assert len(near) and len(far) and np.median(far) > np.median(near) + 1.0
    assert np.all(lab.blur_px[lab.classes == 0] == 0)


def test_no_tile_straddles_the_seam_between_half_frames():
    o = SL.seam_origins((360, 640), FOCUS_TILE, 180)
    assert len(o) == 2 * 2 * 10
    assert np.all((o[:, 0] + FOCUS_TILE <= 180) | (o[:, 0] >= 180))
    assert len(SL.seam_origins((360, 640), FOCUS_TILE, None)) == 5 * 10


def test_the_blur_estimate_recovers_a_known_disc_on_a_real_tile():
    img = cv2.imread(str(sorted(shared_data("focus_sweeps/pi_board_macro").glob("*.jpg"))[23]),
                     cv2.IMREAD_GRAYSCALE)
    grey = cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA)
    tile = grey[40:40 + FOCUS_TILE, 240:240 + FOCUS_TILE]
    for r in (1.5, 3.0, 5.0):
        blurred = cv2.filter2D(tile.astype(np.float32), -1, disc_psf(r), borderType=cv2.BORDER_REFLECT)
        target = D.tile_detail(np.clip(blurred, 0, 255).astype(np.uint8)[None])[0]
        assert abs(SL.estimate_blur(tile, float(target)) - r) <= 0.5


def test_sweeps_are_trained_on_whole_and_drawn_at_their_share(pi_board_every_2nd):
    folder, lab = pi_board_every_2nd
    cfg = D.DataConfig(dead_leaves=6, sweeps=(str(folder),), sweep_share=0.25)
    srcs = D.collect_sources(cfg)
    split = D.split_sources(srcs, cfg)
    assert [s.kind for s in split["train"]].count("sweep") == 1
    assert not any(s.kind == "sweep" for s in split["val"] + split["test"])
    rng = np.random.default_rng(0)
    picks = [D.pick_source(srcs, rng, 0.25).kind for _ in range(2000)]
    assert 0.21 <= picks.count("sweep") / 2000 <= 0.29
    assert D.pick_source([s for s in srcs if s.kind != "sweep"], rng, 0.25).kind != "sweep"
    t, c, b = D.sweep_sample(D.Source("sweep", str(folder)), np.random.default_rng(1), FOCUS_TILE, 8)
    assert t.shape == (8, FOCUS_TILE, FOCUS_TILE) and t.dtype == np.uint8
    assert set(c.tolist()) <= {0, 1} and np.all(b[c == 0] == 0)


def test_a_folder_too_short_to_be_a_sweep_is_one_clear_error(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((64, 64), np.uint8))
    with pytest.raises(InputError, match="at least 5 frames"):
        SL.sweep_files(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        D.collect_sources(D.DataConfig(sweeps=(str(tmp_path / "nope"),)))


def test_shaken_sharp_sweep_tiles_become_real_content_motion_examples(pi_board_every_2nd):
    folder, lab = pi_board_every_2nd
    src = D.Source("sweep", str(folder))
    t, c, b = D.sweep_sample(src, np.random.default_rng(3), FOCUS_TILE, 40, motion_share=0.5)
    motion = c == D.FOCUS_CLASSES.index("motion")
    assert 10 <= motion.sum() <= 30 and t.shape == (40, FOCUS_TILE, FOCUS_TILE)
    assert np.all(b[motion] >= 1.5)
    # Shaking costs the sharp tiles their detail.
    sharp_detail = np.median(D.tile_detail(lab.tiles[lab.classes == 0]))
    assert np.median(D.tile_detail(t[motion])) < 0.7 * sharp_detail
    t0, c0, _ = D.sweep_sample(src, np.random.default_rng(3), FOCUS_TILE, 40)
    assert not np.any(c0 == D.FOCUS_CLASSES.index("motion"))
