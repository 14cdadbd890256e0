"""Pixel defects: the live persistent map on real photographs, and the lens-capped check."""
import json
import time
import weakref

import cv2
import numpy as np
import pytest

from device.defects.persistence import DefectMap

from device.defects.live import DefectMapSink

from device.defects.candidates import frame_candidates

from device.defects.sensor_check import match, sensor_check
from device.sources import open_source
from device.sources.base import Frame
from tests.device.results import result as scored

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image photos are needed")

H, W = 240, 320


def mosaic_rggb(bgr):
    """One sample per photosite, R at (0, 0) (what the sensor records)."""
    chan = np.array([[2, 1], [1, 0]])
    ch = np.tile(chan, (bgr.shape[0] // 2 + 1, bgr.shape[1] // 2 + 1))[:bgr.shape[0], :bgr.shape[1]]
    return np.take_along_axis(bgr, ch[..., None], axis=2)[..., 0].copy()


def demosaic(bayer):
    return cv2.cvtColor(bayer, cv2.COLOR_BayerBG2BGR)    # OpenCV's name for this RGGB layout


def photo():
    return skimage_data.astronaut()[..., ::-1].copy()    # RGB -> BGR, 512 x 512


def defects(rng, n=12):
    ys = rng.integers(6, H - 6, n)
    xs = rng.integers(6, W - 6, n)
    keep = []
    for y, x in zip(ys, xs):      # keep them apart: one detection each
        if all(abs(y - a) > 6 or abs(x - b) > 6 for a, b, _ in keep):
            keep.append((int(y), int(x), 255 if len(keep) % 2 == 0 else 0))
    return keep


def sequence(rng, n=14, inject=(), jpeg=None):
    """n frames of one sensor while the camera pans over a real photo."""
    img = photo()
    frames, visible = [], np.zeros(len(inject), int)
    for _ in range(n):
        oy, ox = rng.integers(0, img.shape[0] - H), rng.integers(0, img.shape[1] - W)
        bayer = mosaic_rggb(img[oy:oy + H, ox:ox + W])
        for i, (y, x, v) in enumerate(inject):
            visible[i] += abs(int(bayer[y, x]) - v) >= 60
            bayer[y, x] = v
        f = demosaic(bayer)
        if jpeg:
            f = cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, jpeg])[1], cv2.IMREAD_COLOR)
        frames.append(f)
    return frames, visible


def test_moving_real_scene_confirms_the_injected_photosite_defects_and_nothing_else():
    rng = np.random.default_rng(3)
    truth = defects(rng)
    frames, visible = sequence(rng, inject=truth)
    m = DefectMap()
    for f in frames:
        m.add(f)
    found = m.confirmed()
    seen = [(y, x) for (y, x, _), v in zip(truth, visible) if v >= 7]
    hits, false = match(found, seen)
    assert false == 0, found
    assert hits >= len(seen) - 1, (hits, len(seen))
    kinds = {(d["y"], d["x"]): d["kind"] for d in found}
    assert "hot" in kinds.values() and "dead" in kinds.values()
    clean = DefectMap()
    for f in sequence(np.random.default_rng(4))[0]:
        clean.add(f)
    assert clean.confirmed() == []


def test_a_still_scene_confirms_nothing_however_long_it_runs():
    rng = np.random.default_rng(5)
    frames, _ = sequence(rng, n=1, inject=defects(rng))
    m = DefectMap()
    for _ in range(30):
        m.add(frames[0])
    assert m.confirmed() == []          # persistence needs the scene to change around it


@pytest.mark.parametrize("focus_pull", [False, True])
def test_a_still_scene_with_sensor_noise_or_a_focus_pull_confirms_nothing(focus_pull):
    """A tripod: noise (and refocusing) moves each textured pixel's local mean now and
    then, but the scene does not move, so texture points must not pile up hits."""
    rng = np.random.default_rng(6)
    base = cv2.resize(photo(), (W, H), interpolation=cv2.INTER_AREA).astype(np.float32)
    m = DefectMap(min_hits=3)
    for i in range(60):
        img = base
        if focus_pull:
            sigma = 0.3 + 2.5 * abs(((i / 15.0) % 2) - 1)
            img = cv2.GaussianBlur(base, (0, 0), sigma)
        noisy = img + rng.normal(0.0, 6.0, img.shape).astype(np.float32)
        m.add(np.clip(noisy, 0, 255).astype(np.uint8))
    assert m.confirmed() == []


def test_single_frame_candidates_find_plain_rgb_pixel_errors():
    # The seed's video case: whole RGB pixels painted, no demosaicing.
    img = cv2.resize(photo(), (W, H), interpolation=cv2.INTER_AREA)
    pts = [(50, 60), (120, 200), (200, 30)]
    for y, x in pts:     # a saturated colour far from the scene there (an error, not a hue)
        img[y, x] = np.where(img[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).mean(0) > 127, 0, 255)
    ys, xs, codes, strength, values = frame_candidates(img, threshold=48)
    found = [{"y": int(y), "x": int(x)} for y, x in zip(ys, xs)]
    hits, _ = match(found, pts)
    assert hits == 3


def test_map_round_trips_through_json():
    rng = np.random.default_rng(3)
    truth = defects(rng)
    m = DefectMap()
    for f in sequence(rng, inject=truth)[0]:
        m.add(f)
    data = json.loads(json.dumps(m.to_json()))
    m2 = DefectMap()
    m2.load_json(data)
    assert m2.confirmed() == m.confirmed() and m2.shape == (H, W)
    with pytest.raises(ValueError, match="track"):
        DefectMap().load_json({"version": 2, "tracks": [["bad"]]})


def test_live_sink_lets_go_of_an_analysed_frame(photo_bgr):
    """The worker does not keep the frame it analysed while it waits for the next one
    (colour and grey planes, 1.2 MB at 640x480)."""
    sink = DefectMapSink(DefectMap(), every_n=1)
    try:
        img = photo_bgr.copy()
        alive = weakref.ref(img)
        sink.on_frame(Frame(grey=img[..., 1], color=img, timestamp=0.0, index=0), scored(1.0))
        del img
        deadline = time.monotonic() + 10
        while (sink.map.frames < 1 or alive() is not None) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.map.frames == 1 and sink.errors == 0
        assert alive() is None, "the defect-map worker still holds the analysed frame"
    finally:
        sink.close()


def test_live_sink_puts_the_map_in_results_and_saves_it_atomically(tmp_path):
    rng = np.random.default_rng(3)
    truth = defects(rng)
    frames, _ = sequence(rng, inject=truth)
    path = tmp_path / "state" / "defects.json"
    sink = DefectMapSink(DefectMap(), every_n=1, map_file=path, save_interval_s=3600)
    for i, img in enumerate(frames):
        f = Frame(grey=img[..., 1], color=img, timestamp=float(i), index=i)
        sink.on_frame(f, scored(1.0, frame=i))
        deadline = time.monotonic() + 10
        while sink.map.frames < i + 1 and time.monotonic() < deadline:   # one at a time, for the test
            time.sleep(0.005)
    time.sleep(0.05)
    last = scored(1.0, frame=99)
    sink.on_frame(Frame(grey=frames[0][..., 1], color=frames[0], timestamp=99.0, index=99), last)
    assert len(last.defects) >= len(truth) - 2
    assert sink.stats()["defects"]["confirmed"] == len(last.defects)
    sink.close()
    saved = json.loads(path.read_text())
    assert len(saved["defects"]) == len(last.defects)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    again = DefectMapSink(DefectMap(), map_file=path)          # resumes after a restart
    assert again.stats()["defects"]["confirmed"] == len(last.defects)
    again.close()


def grab(spec, n):
    src = open_source(spec)
    try:
        return [src.read().color for _ in range(n)], src.defects
    finally:
        src.close()


SIM = "width=320,height=240,hot_pixels=10,dead_pixels=5,stuck_pixels=5,seed=2"


def test_dark_and_flat_frames_classify_every_injected_defect():
    darks, truth = grab(f"sim:scene=flat,exposure=0,{SIM}", 8)
    flats, _ = grab(f"sim:scene=flat,{SIM}", 8)
    check = sensor_check(darks, flats)
    got = {(d["x"], d["y"]): d["kind"] for d in check["defects"]}
    assert got == {(t["x"], t["y"]): t["kind"] for t in truth}
    assert check["meta"]["counts"] == {"dead": 5, "hot": 10, "stuck": 5, "column": 0, "row": 0}
    assert check["lines"] == []
    # Darks alone: dead pixels are invisible, stuck ones look hot, nothing else is flagged.
    dark_only = sensor_check(darks)
    got = {(d["x"], d["y"]): d["kind"] for d in dark_only["defects"]}
    assert got == {(t["x"], t["y"]): "hot" for t in truth if t["kind"] != "dead"}


def test_defects_dark_cli_writes_json_and_csv_and_refuses_to_overwrite(tmp_path, capsys):
    from device.cli import main

    out = tmp_path / "check"
    args = ["defects", "--dark", "4", "--source", f"sim:scene=flat,exposure=0,{SIM}", "--out", str(out), "--json"]
    assert main(args) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["counts"]["hot"] == 15          # 10 hot + 5 stuck read as hot without flats
    rows = (out / "defects.csv").read_text().splitlines()
    assert rows[0] == "x,y,kind,value,sigma" and len(rows) == 16
    assert json.loads((out / "defects.json").read_text())["meta"]["dark_frames"] == 4
    assert main(args) == 2                       # an existing check is never overwritten
    err = capsys.readouterr().err
    assert "already holds" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["defects", "--dark", "0"])
    assert exc.value.code == 2


def test_run_with_the_live_map_reports_it_and_saves_it(tmp_path):
    import subprocess
    import sys

    conf = tmp_path / "c.toml"
    conf.write_text(f'[defects]\nlive = true\nevery_n_frames = 2\nmap_file = "{tmp_path / "map.json"}"\n')
    r = subprocess.run([sys.executable, "-m", "device", "run", "--source", "sim:width=160,height=120",
                        "--frames", "12", "--headless", "--stats", "--config", str(conf)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    assert stats["defects"]["method"] == "classic" and stats["defects"]["frames_analysed"] >= 1
    assert json.loads((tmp_path / "map.json").read_text())["version"] == 2


def test_config_rejects_an_unknown_detector():
    from device.config import load_config
    from device.errors import ConfigError

    with pytest.raises(ConfigError, match="defects.detector"):
        load_config(overrides={"defects": {"detector": "magic"}})


def noise_frames(n, per_frame, seed=5, size=(120, 160)):
    """Flat frames whose level changes every frame (so every repeat is evidence), each
    with ``per_frame`` one-off candidates at random places and one defect that never moves."""
    rng = np.random.default_rng(seed)
    h, w = size
    for i in range(n):
        img = np.full((h, w, 3), 40 + (i * 37) % 150, np.uint8)
        ys = np.append(rng.integers(2, h - 2, per_frame), 60)
        xs = np.append(rng.integers(2, w - 2, per_frame), 80)
        codes = np.append(rng.integers(0, 6, per_frame), 0)
        yield img, ys, xs, codes, np.full(len(ys), 250.0)


def test_unconfirmed_candidates_not_seen_again_are_forgotten():
    m = DefectMap(forget_after=20, max_tracked=10**6)
    for img, ys, xs, codes, vals in noise_frames(100, 100):
        m.add_candidates(img, ys, xs, codes, vals)
    # Frame 100 pruned: only the last 21 frames' noise (and the defect) is still tracked,
    # where keeping everything would hold ~9,000 tracks.
    assert m.tracked <= 21 * 100 + 1
    assert [(d["y"], d["x"]) for d in m.confirmed()] == [(60, 80)]


def test_the_map_stays_bounded_under_endless_noise_and_keeps_the_real_defect():
    m = DefectMap(max_tracked=2000)
    seen = 0
    for img, ys, xs, codes, vals in noise_frames(300, 300, size=(480, 640)):
        m.add_candidates(img, ys, xs, codes, vals)
        seen = max(seen, m.tracked)
    assert seen <= 2000            # 90,000 one-off candidates went through
    found = m.confirmed()
    assert [(d["y"], d["x"], d["kind"]) for d in found] == [(60, 80, "hot")]
    assert found[0]["hits"] == 300


def test_confirmed_merges_neighbours_within_2_px_and_caps_the_list():
    from device.defects.persistence import MAX_DEFECTS

    m = DefectMap(min_hits=1)
    img = np.zeros((400, 400, 3), np.uint8)
    pts = [(10, 10), (12, 11), (10, 13), (30, 30), (30, 32)]
    ys, xs = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    m.add_candidates(img, ys, xs, np.zeros(len(pts), int), np.full(len(pts), 250.0))
    assert sorted((d["y"], d["x"]) for d in m.confirmed()) == [(10, 10), (10, 13), (30, 30)]

    grid = np.arange(3, 397, 6)          # 66 x 66 = 4,356 separate pixels in one frame
    ys, xs = np.repeat(grid, len(grid)), np.tile(grid, len(grid))
    m = DefectMap(min_hits=1)
    m.add_candidates(img, ys, xs, np.zeros(len(ys), int), np.full(len(ys), 250.0))
    assert m.tracked == len(ys) and len(m.confirmed()) == MAX_DEFECTS


def test_the_saved_map_keeps_at_most_max_saved_tracks_the_strongest_first(monkeypatch):
    import device.defects.persistence as dm

    monkeypatch.setattr(dm, "MAX_SAVED_TRACKS", 50)
    m = DefectMap(forget_after=10**6)
    img = np.zeros((480, 640, 3), np.uint8)
    for i in range(6):
        img[:] = 40 + 30 * i                     # a new scene each frame: every repeat counts
        rng = np.random.default_rng(i // 2)      # each noise set shows twice: 2 hits apiece
        ys = np.append(rng.integers(2, 478, 200), 60)
        xs = np.append(rng.integers(2, 638, 200), 80)
        m.add_candidates(img, ys, xs, np.zeros(len(ys), int), np.full(len(ys), 250.0))
    data = m.to_json()
    assert len(data["tracks"]) == 50 and m.tracked > 500
    assert [60, 80, 0, 6] in [t[:4] for t in data["tracks"]]
    again = DefectMap()
    again.load_json(json.loads(json.dumps(data)))
    assert [(d["y"], d["x"]) for d in again.confirmed()] == [(60, 80)]


def test_a_still_compressed_noisy_scene_confirms_nothing():
    """JPEG keeps some noise at the scale of the neighbourhood blocks while removing the
    fine noise the estimate sees, so a few neighbourhoods pass the local test in every
    frame; the scene test (a share of the whole scene must change) holds them back."""
    rng = np.random.default_rng(8)
    base = photo().astype(np.float32)
    m = DefectMap(min_hits=3)
    for _ in range(40):
        noisy = np.clip(base + rng.normal(0.0, 3.0, base.shape), 0, 255).astype(np.uint8)
        m.add(cv2.imdecode(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_COLOR))
    assert m.confirmed() == []
    assert m.undecided()            # the scene's bright points persist: undecided, not lost
