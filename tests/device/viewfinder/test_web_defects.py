"""The defect panel's API: confirmed defects in the status, "mark as known" over HTTP,
and the mark surviving a restart through the saved map."""
from __future__ import annotations

import json
import time

import pytest

from device.defects.live import DefectMapSink
from device.defects.persistence import DefectMap
from tests.device.viewfinder.web_harness import LiveViewfinder

# A saved map of the simulated camera's 640x480 frames with one confirmed hot pixel
# (seven sightings over a changing neighbourhood, the last seven analysed frames).
SAVED = {"version": 2, "shape": [480, 640], "frames": 40, "min_hits": 5,
         "tracks": [[60, 80, 0, 7, 7, 34, 1750.0]]}


@pytest.fixture
def live(tmp_path):
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    path = tmp_path / "defects.json"
    path.write_text(json.dumps(SAVED))
    lv = LiveViewfinder(defect_map=path)
    lv.wait_frames(3)
    yield lv, path
    lv.stop()


def _wait(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_mark_as_known_is_shown_saved_and_kept_across_a_restart(live):
    lv, path = live
    _, _, s = lv.request("GET", "/api/status")
    assert s["features"]["defects"] is True
    assert [(d["x"], d["y"], d["kind"], d["known"]) for d in s["defects"]] == [(80, 60, "hot", False)]
    status, _, body = lv.request("POST", "/api/defects/known", {"x": 80, "y": 60})
    assert status == 200 and body["defect"]["known"] is True
    # the next frame's result carries it
    _wait(lambda: lv.request("GET", "/api/status")[2]["defects"][0]["known"] is True)
    _wait(lambda: json.loads(path.read_text()).get("known") == [[80, 60]])
    lv.stop()
    again = DefectMapSink(DefectMap(), map_file=path)
    try:
        assert [(d["x"], d["y"], d["known"]) for d in again.map.confirmed()] == [(80, 60, True)]
    finally:
        again.close()


def test_unmark(live):
    lv, path = live
    lv.request("POST", "/api/defects/known", {"x": 80, "y": 60})
    status, _, body = lv.request("POST", "/api/defects/known", {"x": 80, "y": 60, "known": False})
    assert status == 200 and body["defect"]["known"] is False
    _wait(lambda: json.loads(path.read_text()).get("known") == [])


@pytest.mark.parametrize("body, expect", [
    ({"x": 81, "y": 60}, 404), ({"x": 80}, 400), ({"x": "80", "y": 60}, 400),
    ({"x": 80, "y": 60, "known": "yes"}, 400), ({"x": 80, "y": 60, "why": 1}, 400)])
def test_bad_marks(live, body, expect):
    lv, _ = live
    status, _, err = lv.request("POST", "/api/defects/known", body)
    assert status == expect and err["error"]
    assert lv.defects.map.known == frozenset()


def test_no_defect_map_is_a_404():
    pytest.importorskip("skimage.data")
    lv = LiveViewfinder()
    try:
        status, _, _ = lv.request("POST", "/api/defects/known", {"x": 1, "y": 1})
        assert status == 404
    finally:
        lv.stop()


def test_a_saved_map_with_a_bad_known_list_is_set_aside(tmp_path):
    path = tmp_path / "defects.json"
    path.write_text(json.dumps(dict(SAVED, known=[[80, 60, 1]])))
    sink = DefectMapSink(DefectMap(), map_file=path)
    sink.close()
    assert any(p.name.startswith("defects.json.damaged-") for p in tmp_path.iterdir())
    assert sink.map.known == frozenset()
