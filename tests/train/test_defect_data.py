"""The defect net's training content: microscope-like bases made from real photos."""
import cv2
import numpy as np

from train import data as D
from train import degrade
from train.baselines import tenengrad


def _astronaut():
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def test_microscope_like_is_softer_and_keeps_the_frame():
    img = _astronaut()
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    ratios = []
    for s in range(12):
        out = degrade.microscope_like(img, np.random.default_rng(s))
        assert out.shape == img.shape and out.dtype == np.uint8
        ratios.append(tenengrad(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)) / tenengrad(grey))
    # mostly blurred (80%): large smooth areas and soft edges, never sharper than the photo
    assert np.median(ratios) < 0.5
    assert max(ratios) < 1.2


def test_microscope_like_fringes_split_the_colour_planes():
    img = _astronaut()
    for s in range(40):   # find a draw with fringes; blue and red move apart
        rng = np.random.default_rng(s)
        out = degrade.microscope_like(img, rng)
        b, r = out[..., 0].astype(float), out[..., 2].astype(float)
        b0, r0 = img[..., 0].astype(float), img[..., 2].astype(float)
        shift = lambda a, a0: np.abs(np.corrcoef(a.ravel(), a0.ravel())[0, 1])  # noqa: E731
        if shift(b, b0) < 0.97 and shift(r, r0) < 0.97:
            return
    raise AssertionError("no draw in 40 changed the colour planes")


def test_a_defect_on_a_microscope_base_stays_a_small_visible_blob():
    base = degrade.microscope_like(_astronaut(), np.random.default_rng(3))
    out, mask, lab = degrade.inject_defects(base, 20, np.random.default_rng(4), mode="bayer",
                                            demosaic_method=0)
    assert len(lab.centres) >= 10            # smooth content leaves room for visible defects
    ref = degrade.demosaic(degrade.mosaic(base), 0)   # the same base without defects
    changed = np.abs(out.astype(int) - ref.astype(int)).max(axis=2) >= 15
    near = cv2.dilate(mask.max(axis=2), np.ones((7, 7), np.uint8)).astype(bool)
    assert not (changed & ~near).any()      # nothing but the defects' blobs moved
    for (cy, cx), kind in zip(lab.centres, lab.kinds):
        y, x = int(round(cy)), int(round(cx))
        assert changed[y - 1:y + 2, x - 1:x + 2].any(), (kind, cy, cx)


def test_defect_samples_include_microscope_like_crops(monkeypatch):
    monkeypatch.setattr(D, "MICROSCOPE_SHARE", 1.0)
    calls = []
    orig = degrade.microscope_like
    monkeypatch.setattr(degrade, "microscope_like", lambda img, rng: calls.append(1) or orig(img, rng))
    t, h = D.defect_sample(D.Source("photo", "astronaut"), np.random.default_rng(0), D.DEFECT_TILE)
    assert len(calls) == 3 and len(t) > 0 and h.shape[:3] == t.shape[:3]


def test_candidate_tiles_are_centred_on_the_ring_rules_candidates():
    """``candidate_share=1``: every tile of a real photo's crops is centred (within 2 px, or
    as near as the crop's edge allows) on a ring-rule candidate, where the device asks
    the net; the default keeps the grid."""
    from device.defects.candidates import frame_candidates

    img = cv2.resize(_astronaut(), (64, 64), interpolation=cv2.INTER_AREA)
    img, _, _ = degrade.inject_defects(img, 3, np.random.default_rng(2), mode="bayer", jpeg_quality=90)
    ys, xs = frame_candidates(img, 8.0, 0.3)[:2]
    assert len(ys) > 4
    t = D.DEFECT_TILE
    org = D._candidate_origins(img, t, 4, np.random.default_rng(0))
    assert org.shape == (4, 2)
    for oy, ox in org:
        cy, cx = oy + t // 2, ox + t // 2
        d = np.maximum(np.abs(ys - cy), np.abs(xs - cx))
        edge = oy in (0, 64 - t) or ox in (0, 64 - t)
        assert d.min() <= 2 or edge
    grid, _ = D.defect_sample(D.Source("photo", "astronaut"), np.random.default_rng(5), t)
    cand, _ = D.defect_sample(D.Source("photo", "astronaut"), np.random.default_rng(5), t,
                              candidate_share=1.0)
    assert grid.shape == cand.shape and not np.array_equal(grid, cand)
