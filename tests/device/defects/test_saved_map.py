"""The live map's saved state: damaged files are set aside, old ones migrate (issue 15
item 5, hardening case F11). Every case must start the sink with a new map, never raise."""
import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from device.defects.live import DefectMapSink
from device.defects.persistence import DefectMap
from tests.conftest import REPO

DAMAGED = {
    "a list": b"[]",
    "a number": b"5",
    "Infinity": b"Infinity",
    "Infinity frames": b'{"shape": [480, 640], "frames": Infinity, "tracks": []}',
    "Infinity in a track": b'{"version": 2, "shape": [480, 640], "frames": 3, "tracks": [[1, 2, 0, 2, 2, 1, Infinity]]}',
    "huge hits": b'{"version": 2, "shape": [480, 640], "frames": 3, "tracks": [[1, 2, 0, 99999999999, 2, 1, 9.0]]}',
    "huge frames": b'{"shape": [480, 640], "frames": 1' + b"0" * 40 + b', "tracks": []}',
    "deep nesting": b"[" * 100_000,
    "not UTF-8": b"\xff\xfe{}",
    "wrong schema": b'{"version": 2, "shape": "big", "frames": 3, "tracks": []}',
    "a track outside the frame": b'{"version": 2, "shape": [48, 64], "frames": 3, "tracks": [[100, 2, 0, 2, 2, 1, 9.0]]}',
    "a bool for a count": b'{"version": 2, "shape": [48, 64], "frames": true, "tracks": []}',
    "unknown version": b'{"version": 99, "shape": [48, 64], "frames": 3, "tracks": []}',
    "truncated": b'{"version": 2, "shape": [48, 6',
}


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_map_is_set_aside_and_a_new_one_started(tmp_path, caplog, content):
    path = tmp_path / "defects.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="device.defects.live"):
        sink = DefectMapSink(DefectMap(), map_file=path)
    try:
        assert sink.map.tracked == 0 and sink.map.frames == 0 and sink.map.shape is None
        aside = [p for p in tmp_path.iterdir() if p.name.startswith("defects.json.damaged-")]
        assert len(aside) == 1 and aside[0].read_bytes() == content
        assert not path.exists()
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "damaged" in lines[0] and aside[0].name in lines[0], lines
    finally:
        sink.close()
    assert json.loads(path.read_text())["version"] == 2     # the new map, saved on close


def test_a_fifo_in_place_of_the_map_is_set_aside_without_blocking(tmp_path):
    import os

    path = tmp_path / "defects.json"
    os.mkfifo(path)
    sink = DefectMapSink(DefectMap(), map_file=path)
    sink.close()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("defects.json.damaged-")]


def test_a_version_1_map_migrates_with_a_log_line(tmp_path, caplog):
    path = tmp_path / "defects.json"
    path.write_text(json.dumps({"version": 1, "shape": [120, 160], "frames": 40, "min_hits": 5,
                                "defects": [], "tracks": [[60, 80, 0, 7, 120.5, 1750.0],
                                                          [10, 20, 4, 2, 33.0, 10.0]]}))
    with caplog.at_level(logging.INFO, logger="device.defects.persistence"):
        sink = DefectMapSink(DefectMap(), map_file=path)
    try:
        assert any("migrated a version-1 map" in r.getMessage() for r in caplog.records)
        assert [(d["y"], d["x"], d["kind"], d["hits"]) for d in sink.map.confirmed()] == [(60, 80, "hot", 7)]
        assert sink.stats()["defects"]["confirmed"] == 1
    finally:
        sink.close()
    saved = json.loads(path.read_text())
    assert saved["version"] == 2 and [60, 80, 0, 7] in [t[:4] for t in saved["tracks"]]


def test_a_resumed_map_measures_neighbourhoods_afresh():
    """A saved map keeps counts, not neighbourhoods: the first sighting after a restart
    sets the neighbourhood and counts no change."""
    m = DefectMap(min_hits=3)
    img = np.zeros((60, 80, 3), np.uint8)
    for level in (40, 120):
        img[:] = level
        m.add_candidates(img, [30], [40], [0], [250.0])
    again = DefectMap(min_hits=3)
    again.load_json(json.loads(json.dumps(m.to_json())))
    img[:] = 200
    again.add_candidates(img, [30], [40], [0], [250.0])
    assert again.confirmed() == [] and [d["hits"] for d in again.undecided()] == [2]
    img[:] = 30
    again.add_candidates(img, [30], [40], [0], [250.0])
    assert [d["hits"] for d in again.confirmed()] == [3]


def test_run_starts_over_a_damaged_map_without_a_traceback(tmp_path):
    """Hardening case F11, as the service meets it."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "defects.json").write_text("[]")
    conf = tmp_path / "c.toml"
    conf.write_text(f'[defects]\nlive = true\n[service]\nstate_dir = "{state}"\n')
    r = subprocess.run([sys.executable, "-m", "device", "run", "--headless", "--source", "sim:width=160,height=120",
                        "--frames", "5", "--config", str(conf)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "set aside" in r.stderr
    assert [p.name for p in state.iterdir() if ".damaged-" in p.name]


def test_known_defects_are_saved_and_forgotten_with_a_new_frame_size():
    m = DefectMap()
    m.load_json({"version": 2, "shape": [120, 160], "frames": 40,
                 "tracks": [[60, 80, 0, 7, 7, 34, 1750.0]]})
    assert [d["known"] for d in m.confirmed()] == [False]
    m.set_known(80, 60)
    saved = m.to_json()
    assert saved["known"] == [[80, 60]] and saved["defects"][0]["known"] is True
    again = DefectMap()
    again.load_json(json.loads(json.dumps(saved)))
    assert again.known == {(80, 60)} and again.confirmed()[0]["known"] is True
    again.set_known(80, 60, False)
    assert again.confirmed()[0]["known"] is False
    again.set_known(80, 60)
    again.add(np.zeros((60, 80, 3), np.uint8))      # another frame size: other photosites
    assert again.known == frozenset()
