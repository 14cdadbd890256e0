"""The Stars and Optics inspector panels in headless Chromium, under the server's CSP:
star mode's numbers and V-curve, and the inspector's map of a pass with a known tilt."""
from __future__ import annotations

import numpy as np
import pytest

from device.config.inspect import InspectConfig
from device.optics.live import Pass
from device.scoring.classic import ClassicScorer
from device.sources.base import Frame
from tests.device.optics.tilted_sweep import render_sweep
from tests.device.viewfinder.test_web_browser import _wait_js, browser  # noqa: F401  (fixture)
from tests.device.viewfinder.web_harness import LiveViewfinder


@pytest.fixture
def starry():
    lv = LiveViewfinder(scene="stars", stars="hfr", inspect=InspectConfig(enabled=True))
    lv.wait_frames(3)
    yield lv
    lv.stop()


def _tilted_pass() -> Pass:
    skdata = pytest.importorskip("skimage.data", reason="scikit-image not installed")
    scorer = ClassicScorer()
    frames = render_sweep(skdata.brick(), 21, 10.0, tilt_x=6.0, tilt_y=0.0)
    maps = np.stack([scorer.score(Frame(grey=g, timestamp=0.0, index=i)).tile_map
                     for i, g in enumerate(frames)])
    return Pass("hand", maps)


def test_stars_and_inspector_panels_in_headless_chromium(browser, starry):  # noqa: F811
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.set_default_timeout(10_000)
    violations: list = []
    page.on("console", lambda msg: violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    page.on("pageerror", lambda exc: violations.append(str(exc)))      # a script error
    page.on("response", lambda r: violations.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    try:
        page.goto(f"http://127.0.0.1:{starry.port}/")
        # Star mode: the panel and the circles toggle show, with live numbers and a V-curve.
        _wait_js(page, "!document.getElementById('stars-panel').hidden")
        _wait_js(page, "/^[0-9.]+$/.test(document.getElementById('stars-hfr').textContent)")
        assert page.is_visible("#stars-toggle")
        assert int(page.evaluate("document.getElementById('stars-count').textContent")) > 5
        blank = page.evaluate("(() => { const c = document.createElement('canvas');"
                              " c.width = 300; c.height = 140; return c.toDataURL().length; })()")
        _wait_js(page, f"document.getElementById('vcurve').toDataURL().length > {blank} + 500")
        page.check("input[data-el=stars]")
        _wait_js(page, "true")
        for _ in range(100):
            if starry.viewfinder.toggles["stars"]:
                break
            page.wait_for_timeout(50)
        assert starry.viewfinder.toggles["stars"] is True
        # The inspector: no pass yet, then the map of a pass with a known tilt.
        _wait_js(page, "document.getElementById('inspect-summary').textContent.startsWith('no pass')")
        starry.inspector.last_pass = _tilted_pass()
        page.click("#inspect-run")
        _wait_js(page, "document.getElementById('inspect-summary').textContent.includes('tilted')")
        mblank = page.evaluate("(() => { const c = document.createElement('canvas');"
                               " c.width = 300; c.height = 200; return c.toDataURL().length; })()")
        _wait_js(page, f"document.getElementById('inspect-map').toDataURL().length > {mblank} + 2000")
        # The arrow is red and points right (the left side focuses first): red pixels on
        # the map's right half, near the middle row.
        red = page.evaluate("""(() => {
            const g = document.getElementById('inspect-map').getContext('2d');
            const d = g.getImageData(150, 90, 150, 20).data; let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] < 90 && d[i + 2] < 90) n++;
            return n; })()""")
        assert red > 50
        assert violations == [], violations
    finally:
        page.close()
