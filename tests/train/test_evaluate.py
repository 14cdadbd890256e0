"""Metric helpers and the whole-image pipeline (on real photographs)."""
import cv2
import numpy as np
import pytest

from train import evaluate as E


def test_roc_and_pr_extremes():
    y = np.array([0, 0, 1, 1, 0, 1], bool)
    perfect = y.astype(float)
    assert E.roc_curve(perfect, y)[2] == pytest.approx(1.0)
    assert E.roc_curve(-perfect, y)[2] == pytest.approx(0.0)
    assert E.pr_curve(perfect, y)[2] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    yy = rng.random(4000) < 0.5
    assert E.roc_curve(rng.random(4000), yy)[2] == pytest.approx(0.5, abs=0.03)
    # ties: a constant score is a coin flip
    assert E.roc_curve(np.ones(6), y)[2] == pytest.approx(0.5)


def test_confusion_and_per_class():
    cm = E.confusion(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    prec, rec = E.per_class_pr(cm)
    assert prec.tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert rec.tolist() == pytest.approx([0.5, 1.0, 0.5])


def test_certainty_weighting_is_the_devices_pooling():
    from device.scoring.pooling import certainty, pool

    sure = np.array([[0.98, 0.01, 0.01]])
    unsure = np.full((3, 3), 1 / 3)
    assert certainty(unsure) == pytest.approx(np.zeros(3), abs=1e-6)
    assert certainty(sure)[0] > 0.8
    # three undecided tiles do not outvote one confident tile
    p, _, _ = pool(np.concatenate([sure, unsure]), np.zeros(4))
    assert p.argmax() == 0 and p[0] > 0.9


def test_detection_matching_uses_2px_tolerance():
    gts = [[(10.0, 10.0, 1)], [], [(5.0, 20.0, 0)]]
    peaks = [np.array([[11, 11, 0.9], [25, 25, 0.8]]), np.array([[3, 3, 0.95]]), np.array([[5, 23, 0.9]])]
    tp, fp, fn, pairs = E.match_detections(peaks, gts, 0.5)
    assert (tp, fp, fn) == (1, 3, 1)   # (11,11) within √2 of (10,10); (5,23) is 3 px off
    tp, fp, fn, _ = E.match_detections(peaks, gts, 0.92)
    assert (tp, fp, fn) == (0, 1, 2)
    rows = E.detection_sweep(peaks, gts, 1_000_000, [0.5, 0.92, 0.99])
    assert E.pick_threshold(rows, 1.0)["threshold"] == 0.92


def test_components_recover_defect_centres():
    from train import degrade
    m = np.zeros((1, 32, 32, 3), np.uint8)
    m[0, 8, 9, 1] = 1
    m[0, 20, 20, 2] = m[0, 20, 21, 2] = 1
    t = np.stack([degrade.defect_heatmap_target(m[0])])
    comps = sorted(E._components(t)[0])
    assert comps[0][:2] == pytest.approx((8, 9)) and comps[0][2] == 1
    assert comps[1][:2] == pytest.approx((20, 20.5)) and comps[1][2] == 2


def test_defect_outside_the_tile_is_a_dont_care():
    from train import degrade
    m = np.zeros((34, 34, 3), np.uint8)
    m[0, 10, 0] = 1          # the site is outside the 32x32 tile cut at (1, 1)
    m[1, 20, 2] = 1          # on the tile's first row: inside
    t = degrade.defect_heatmap_target(m)[1:33, 1:33][None]
    comps = sorted(E._components(t)[0])
    assert [c[3] for c in comps] == [False, True]
    outside, inside = comps
    on_outside = np.array([[outside[0], outside[1], 0.9]])
    assert E.match_detections([on_outside], [comps], 0.5)[:3] == (0, 0, 1)
    both = np.array([[outside[0], outside[1], 0.9], [inside[0], inside[1], 0.8]])
    assert E.match_detections([both], [comps], 0.5)[:3] == (1, 0, 0)
    stray = np.array([[25.0, 25.0, 0.9]])
    assert E.match_detections([stray], [comps], 0.5)[:3] == (0, 1, 1)


class SharpnessModel:
    """A stand-in for focus_net with a physical rule: normalised tiles with strong fine
    detail are 'sharp'. Lets the whole-image path be tested on real photos without training."""

    def predict(self, x, batch_size=None, verbose=0):
        lap = np.array([np.abs(cv2.Laplacian(t[..., 0], cv2.CV_32F)).mean() for t in x])
        s = 1 / (1 + np.exp(-(lap - 1.0) * 6))
        probs = np.stack([s, (1 - s) / 2, (1 - s) / 2], 1)
        return [probs, (1 - s)[:, None] * 5]


def test_whole_image_on_real_kaggle_photos(kaggle_dir):
    paths = E.kaggle_paths(kaggle_dir)
    assert len(paths) == 9
    by_scene = {}
    for p in paths:
        img = cv2.imread(str(p))
        r = E.score_photo(SharpnessModel(), img, 64)
        assert r["size"][0] == E.WORKING_WIDTH          # scored at the lores working width
        assert 0 < r["n_tiles"] <= (r["size"][0] // 64) * (r["size"][1] // 64)
        by_scene.setdefault(p.stem.rsplit("_", 1)[0], {})[p.stem[-1]] = r["probs"][0]
    for scene, d in by_scene.items():
        assert d["S"] > d["F"], scene   # the real defocused shot looks less sharp


def test_real_photo_checks_on_real_photos():
    """The checks' own pipeline, with a physical-rule stand-in for the net: the real shake
    photo plus three verdicts per blind-test photograph (dead leaves are not photographs)."""
    pytest.importorskip("skimage.data")
    from train.data import Source

    rows = E.real_photo_checks(SharpnessModel(), 64, [Source("photo", "coffee"), Source("leaves", "0")])
    assert [(r["photo"], r["expected"]) for r in rows] == [
        ("photo:clock", "motion"), ("photo:coffee", "sharp"),
        ("photo:coffee", "defocus"), ("photo:coffee", "motion")]
    assert all(r["right"] == (r["label"] == r["expected"]) for r in rows)
    as_taken, disc, line = rows[1:]
    assert as_taken["label"] == "sharp"
    assert disc["label"] != "sharp" and line["label"] != "sharp"
    assert as_taken["p_sharp"] > 0.4 > 0.2 > max(disc["p_sharp"], line["p_sharp"])


def test_the_report_pools_a_photo_exactly_as_the_device(photo_bgr):
    """score_photo (the report's real-photo checks) against FocusScorer.analyse (the
    device), both on the shipped int8 net: the same tiles pooled the same way."""
    from device.common.preprocess import FOCUS_CLASSES, FOCUS_TILE, to_grey
    from device.scoring.focus_net import FocusScorer
    from device.scoring.pooling import FocusNetOptions

    dev = FocusScorer.from_path(num_threads=1)
    every_tile = FocusScorer(dev.model, dev.meta, FocusNetOptions(max_tiles=10 ** 6))

    class AsKeras:                       # the shipped net behind the predict() the report calls
        def predict(self, x, batch_size=256, verbose=0):
            return dev.predict(x)

    for bgr in (photo_bgr, cv2.GaussianBlur(photo_bgr, (0, 0), 3)):
        report = E.score_photo(AsKeras(), bgr, FOCUS_TILE)
        device = every_tile.analyse(to_grey(E._to_working(bgr)))
        assert report["label"] == device.label and report["n_tiles"] == device.tiles
        assert report["probs"] == pytest.approx([device.probs[k] for k in FOCUS_CLASSES], abs=1e-6)
