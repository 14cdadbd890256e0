"""Star mode over real HTTP: ``"stars"`` in /api/status, the circles toggle, the panel."""
from __future__ import annotations

import time

import pytest

from tests.device.viewfinder.web_harness import LiveViewfinder


@pytest.fixture(scope="module")
def starry():
    lv = LiveViewfinder(scene="stars", stars="hfr", fps=30.0)
    lv.wait_frames(5)
    yield lv
    lv.stop()


def wait_status(lv, ok, timeout=5.0):
    end = time.monotonic() + timeout
    while True:
        status, _, body = lv.request("GET", "/api/status")
        assert status == 200
        if ok(body) or time.monotonic() > end:
            return body
        time.sleep(0.05)


def test_status_carries_star_sizes_and_the_vcurve(starry):
    body = wait_status(starry, lambda b: b["stars"] and len(b["stars"]["vcurve"]) >= 3)
    st = body["stars"]
    assert st["status"] == "ok" and st["count"] > 5 and st["measure"] == "hfr"
    assert 0 < st["min_hfr_px"] <= st["hfr_px"] and st["fwhm_px"] > 0
    assert st["vcurve_x"] == "lens_position"
    lens = starry.source.exposed_position
    assert all(len(p) == 2 and abs(p[0] - lens) < 0.01 for p in st["vcurve"]), (lens, st["vcurve"])  # the lens stays put


def test_peak_reset_clears_the_star_minimum(starry):
    wait_status(starry, lambda b: b["stars"] and b["stars"]["vcurve"])
    status, _, _ = starry.request("POST", "/api/peak/reset", {})
    assert status == 200
    assert len(starry.stars.status().vcurve) <= 2              # a frame may land in between


def test_star_circles_toggle_round_trips(starry):
    status, _, body = starry.request("POST", "/api/overlay", {"stars": True})
    assert status == 200 and body["overlay"]["stars"] is True
    assert starry.viewfinder.layers(*starry.viewfinder.latest()[:2]).stars
    starry.request("POST", "/api/overlay", {"stars": False})
    assert starry.viewfinder.layers(*starry.viewfinder.latest()[:2]).stars is None


def test_the_page_has_the_stars_panel_and_star_mode_off_reports_null(starry):
    status, _, page = starry.request("GET", "/")
    assert status == 200 and b'<section class="panel" id="stars-panel"' in page
    assert b'id="vcurve"' in page
    plain = LiveViewfinder(fps=30.0)
    try:
        plain.wait_frames(2)
        status, _, body = plain.request("GET", "/api/status")
        assert status == 200 and "stars" in body and body["stars"] is None
    finally:
        plain.stop()
