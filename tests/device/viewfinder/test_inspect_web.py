"""``/api/inspect`` over real HTTP: the live inspector after a real autofocus scan on the
simulated lens (a real-photo scene), bad bodies, foreign origins, no inspector."""
from __future__ import annotations

import time

import pytest

from device.config.inspect import InspectConfig
from device.optics.live import NO_PASS
from tests.device.viewfinder.web_harness import LiveViewfinder

pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")


@pytest.fixture(scope="module")
def armed(tmp_path_factory):
    lv = LiveViewfinder(features_dir=tmp_path_factory.mktemp("caps"), fps=0.0,
                        inspect=InspectConfig(enabled=True))
    lv.wait_frames(3)
    yield lv
    lv.stop()


def test_before_any_pass_the_result_is_null_with_the_reason(armed):
    if armed.inspector.last_pass is None:
        status, _, body = armed.request("GET", "/api/inspect")
        assert status == 200 and body == {"result": None, "reason": NO_PASS}
        status, _, body = armed.request("POST", "/api/inspect", {})
        assert status == 200 and body["result"] is None


def test_after_an_autofocus_scan_the_map_is_served_and_can_be_redone(armed):
    status, _, _ = armed.request("POST", "/api/autofocus", {})
    assert status == 200
    end, body = time.monotonic() + 20, {}
    while time.monotonic() < end:
        status, _, body = armed.request("GET", "/api/inspect")
        if body.get("verdict"):
            break
        time.sleep(0.1)
    assert body.get("verdict"), body
    assert body["pass"]["kind"] == "autofocus" and len(body["grid"]) == 3
    assert {"tilt", "curvature", "fit_rms", "summary", "steps"} <= set(body)
    status, _, again = armed.request("POST", "/api/inspect", {"grid": [2, 4]})
    assert status == 200 and len(again["grid"]) == 2 and len(again["grid"][0]) == 4


@pytest.mark.parametrize("body, status", [
    ({"grid": "3x3"}, 400), ({"grid": [3]}, 400), ({"grid": [1, 2]}, 400),
    ({"grid": [True, 3]}, 400), ({"sparkles": 1}, 400), (b"[1]", 400), (b"{nope", 400),
])
def test_bad_bodies_are_400(armed, body, status):
    got, _, reply = armed.request("POST", "/api/inspect", body)
    assert got == status and "error" in reply


def test_a_foreign_origin_cannot_post_and_other_verbs_are_refused(armed):
    status, _, _ = armed.request("POST", "/api/inspect", {}, headers={"Origin": "http://evil.example"})
    assert status == 403
    status, _, _ = armed.request("PUT", "/api/inspect", {})
    assert status == 405


def test_the_page_has_the_inspect_panel_and_a_run_without_inspector_is_404(armed):
    status, _, page = armed.request("GET", "/")
    assert status == 200 and b'<section class="panel" id="inspect-panel"' in page
    plain = LiveViewfinder(fps=0.0)
    try:
        plain.wait_frames(2)
        status, _, body = plain.request("GET", "/api/inspect")
        assert status == 404 and "not available" in body["error"]
    finally:
        plain.stop()
