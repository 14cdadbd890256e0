"""Dataset building: seeded, blind by source, flat tiles out, public API shapes."""
import numpy as np
import pytest

from device.common.preprocess import DEFECT_KINDS, DEFECT_TILE, FOCUS_CLASSES, FOCUS_TILE, FLAT_STD, MIN_NORM_STD
from train import data as D

SMALL = D.DataConfig(dead_leaves=6)


def test_same_seed_same_dataset_other_seed_differs():
    a = D.build_split("focus", SMALL, "train", 60)
    b = D.build_split("focus", SMALL, "train", 60)
    c = D.build_split("focus", D.DataConfig(dead_leaves=6, seed=1), "train", 60)
    assert np.array_equal(a[0], b[0])
    assert np.array_equal(a[1]["blur_px"], b[1]["blur_px"])
    assert not np.array_equal(a[0], c[0])
    d1 = D.build_split("defects", SMALL, "train", 40)
    d2 = D.build_split("defects", SMALL, "train", 40)
    assert np.array_equal(d1[0], d2[0]) and np.array_equal(d1[1], d2[1])


def test_split_is_blind_by_source_and_stable():
    srcs = D.collect_sources(SMALL)
    sp = D.split_sources(srcs, SMALL)
    ids = {k: {s.id for s in v} for k, v in sp.items()}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert sum(len(v) for v in ids.values()) == len(srcs)
    for k in D.SPLITS:  # every split holds real photos, not only synthetic texture
        assert any(s.kind == "photo" for s in sp[k]), k
    # adding images elsewhere does not move a photo between splits
    more = D.split_sources(D.collect_sources(D.DataConfig(dead_leaves=30)), D.DataConfig(dead_leaves=30))
    photos = lambda d: {k: {s.ref for s in v if s.kind == "photo"} for k, v in d.items()}
    assert photos(sp) == photos(more)


def test_split_rejects_too_few_sources(tmp_path):
    import cv2
    from device.errors import InputError
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((80, 80, 3), np.uint8))
    cfg = D.DataConfig(images=(str(tmp_path),), builtin=False, dead_leaves=0)
    with pytest.raises(InputError, match="not enough base images"):
        D.split_sources(D.collect_sources(cfg), cfg)


def test_focus_tiles_textured_labelled_and_normalised():
    x, y, raw = D.build_split("focus", SMALL, "val", 120, raw=True)
    assert x.shape == (120, FOCUS_TILE, FOCUS_TILE, 1) and x.dtype == np.float32
    assert raw.shape == (120, FOCUS_TILE, FOCUS_TILE) and raw.dtype == np.uint8
    assert (raw.reshape(120, -1).std(1) >= FLAT_STD).all()        # flat tiles are kept out
    std = raw.reshape(120, -1).astype(np.float32).std(1)
    # normalisation is the shared one: zero mean, std = raw std / max(raw std, floor)
    assert np.allclose(x.reshape(120, -1).mean(1), 0, atol=0.15)
    assert np.allclose(x.reshape(120, -1).std(1), std / np.maximum(std, MIN_NORM_STD), atol=0.15)
    cls = y["probs"].argmax(1)
    assert np.allclose(y["probs"].sum(1), 1)
    assert set(cls.tolist()) == {0, 1, 2}                          # all classes present
    assert (y["blur_px"][cls == 0] < 0.6).all() and (y["blur_px"][cls != 0] >= 1.5).all()


def test_defect_tiles_and_targets():
    x, h = D.build_split("defects", SMALL, "val", 80)
    assert x.shape == (80, DEFECT_TILE, DEFECT_TILE, 3) and 0 <= x.min() and x.max() <= 1
    assert h.shape == (80, DEFECT_TILE, DEFECT_TILE, len(DEFECT_KINDS))
    has = h.reshape(80, -1).max(1) > 0
    assert 0.2 < has.mean() < 0.9   # both clean and defective tiles


def test_public_api_shapes_and_determinism():
    r1 = D.representative_inputs("focus", 20, seed=3)
    r2 = D.representative_inputs("focus", 20, seed=3)
    assert r1.shape == (20, FOCUS_TILE, FOCUS_TILE, 1) and np.array_equal(r1, r2)
    rd = D.representative_inputs("defects", 10, seed=3)
    assert rd.shape == (10, DEFECT_TILE, DEFECT_TILE, 3)
    x, y = D.evaluation_split("focus", seed=3, n=30)
    assert x.shape[0] == 30 and y["probs"].shape == (30, len(FOCUS_CLASSES)) and y["blur_px"].shape == (30,)
    xd, yd = D.evaluation_split("defects", seed=3, n=16)
    assert yd.shape == (16, DEFECT_TILE, DEFECT_TILE, 3)
    with pytest.raises(ValueError):
        D.evaluation_split("nope", seed=0)


def test_evaluation_split_comes_from_held_out_sources():
    # the test split's photos are never the train split's photos
    sp = D.split_sources(D.collect_sources(D.DataConfig(seed=3)), D.DataConfig(seed=3))
    test_photos = {s.ref for s in sp["test"] if s.kind == "photo"}
    train_photos = {s.ref for s in sp["train"] if s.kind == "photo"}
    assert test_photos and not (test_photos & train_photos)


def test_tf_dataset_streams_batches():
    pytest.importorskip("tensorflow")
    srcs = D.split_sources(D.collect_sources(SMALL), SMALL)["train"]
    ds = D.tf_dataset("focus", srcs, SMALL, batch=8, shuffle=16)
    x, (p, b) = next(iter(ds))
    assert x.shape == (8, FOCUS_TILE, FOCUS_TILE, 1) and p.shape == (8, 3) and b.shape == (8, 1)
    ds2 = D.tf_dataset("defects", srcs, SMALL, batch=4, shuffle=0)
    xd, hd = next(iter(ds2))
    assert xd.shape == (4, DEFECT_TILE, DEFECT_TILE, 3) and hd.shape == (4, DEFECT_TILE, DEFECT_TILE, 3)


def _astronaut_grey():
    import cv2
    from skimage import data as skd
    img = cv2.cvtColor(skd.astronaut(), cv2.COLOR_RGB2GRAY)
    return cv2.resize(img, (384, 384), interpolation=cv2.INTER_AREA)


def test_only_tiles_sharp_in_the_original_photo_count_as_focus_examples():
    """A real photo whose left half is out of focus (a bokeh): none of the left half's
    tiles reaches the detail a sharp example needs, most of the right half's do."""
    import cv2
    from device.common.preprocess import extract_tiles, textured_mask, tile_origins
    grey = _astronaut_grey()
    half = grey.copy()
    half[:, :192] = cv2.GaussianBlur(grey, (0, 0), 3.0)[:, :192]
    need = D.detail_threshold(half, FOCUS_TILE, 0.4, 3.0)
    origins = tile_origins(*half.shape, FOCUS_TILE)
    tiles = extract_tiles(half, origins, FOCUS_TILE)
    tex = textured_mask(tiles)
    ok = D.tile_detail(tiles) >= need
    left = origins[:, 1] + FOCUS_TILE <= 192
    right = origins[:, 1] >= 192
    assert tex[left].sum() >= 4                      # the bokeh is textured, not flat
    assert not ok[left & tex].any()
    assert ok[right & tex].mean() >= 0.5


def test_a_photo_soft_all_over_gives_no_sharp_examples(tmp_path):
    import cv2
    # Soft enough to stay soft after the random downscale to the working scale (x0.55).
    soft = cv2.GaussianBlur(_astronaut_grey(), (0, 0), 6.0)
    path = tmp_path / "soft.png"
    cv2.imwrite(str(path), soft)
    src = D.Source("file", str(path))
    keep_all = D.focus_sample(src, np.random.default_rng(3), FOCUS_TILE, crops=4)[0]
    judged = D.focus_sample(src, np.random.default_rng(3), FOCUS_TILE, crops=4, detail=(0.4, 3.0))[0]
    assert len(keep_all) > 0 and len(judged) == 0
    sharp = tmp_path / "sharp.png"
    cv2.imwrite(str(sharp), _astronaut_grey())
    kept = D.focus_sample(D.Source("file", str(sharp)), np.random.default_rng(3), FOCUS_TILE, crops=4,
                          detail=(0.4, 3.0))[0]
    assert len(kept) > 0


def test_the_model_card_lists_each_collection_trained_on_with_its_licences(tmp_path):
    from tests.conftest import shared_data
    photos = shared_data("train_photos")
    plain = tmp_path / "mine"
    plain.mkdir()
    cols = D.collections([str(photos), str(plain)])
    named = [c for c in cols if c["collection"]]
    assert len(named) == 8 and sum(c["files"] for c in named) == 405
    assert all(c["licences"] and c["licence_files"] for c in named)
    assert {"kodak-photocd", "unsplash", "ubuntu-wallpapers"} <= {c["collection"] for c in named}
    assert cols[-1] == {"folder": str(plain), "collection": None, "licences": [], "files": None}
