"""The viewfinder page in a real headless browser (Debian's chromium through Playwright).

Skips with a visible reason when Playwright or chromium is missing, so ``make test`` passes
on a machine without them. Leaves a screenshot in ``test-artifacts/viewfinder.png``.
"""
from __future__ import annotations

import os
import shutil

import pytest

from device.config import OverlayConfig
from tests.device.viewfinder.web_harness import LiveViewfinder
from tests.conftest import REPO

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "browser-test-token"


def _chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("chromium not installed (apt-get install chromium): browser test skipped")
    return path


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright not installed (pip install playwright): browser test skipped")
    exe = _chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, timeout=30_000)
        yield b
        b.close()


@pytest.fixture
def live(tmp_path):
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    lv = LiveViewfinder(token=TOKEN, features_dir=tmp_path, cnn=True,
                        overlay=OverlayConfig(heatmap=True, heatmap_source="cnn", zoom=True))
    lv.wait_frames(3)
    yield lv
    lv.stop()


def test_viewfinder_page_in_headless_chromium(browser, live):
    page = browser.new_page(viewport={"width": 1100, "height": 720})
    page.set_default_timeout(10_000)
    # The page runs under the server's CSP: any inline code it did not hash shows up here.
    violations: list = []
    page.on("console", lambda msg: violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    try:
        page.goto(f"http://127.0.0.1:{live.port}/?token={TOKEN}")
        assert page.url.endswith(f":{live.port}/")                 # the token left the address bar
        # The stream decodes.
        _wait_js(page, "document.getElementById('stream').naturalWidth > 0")
        assert page.evaluate("document.getElementById('stream').naturalWidth") == 640
        # The score is live.
        _wait_js(page, "/^[0-9.]+$/.test(document.getElementById('score').textContent)")
        first = page.evaluate("document.getElementById('frames').textContent")
        _wait_js(page, f"document.getElementById('frames').textContent !== '{first}'")
        # The focus net's verdict is on the page, and its tile map is the heat layer.
        _wait_js(page, "/^CNN (sharp|defocus|motion|flat) /.test(document.getElementById('cnn').textContent)")
        frame, result, _ = live.viewfinder.latest()
        assert result.cnn is not None and result.cnn.tile_map is not None
        heat = live.viewfinder.layers(frame, result).heat
        assert heat is not None and heat.shape == result.cnn.tile_map.shape
        # Controls of the features this run has are shown.
        assert page.is_visible("#autofocus") and page.is_visible("#capture")
        assert page.is_visible("#roi-controls")
        # A toggle round-trips to the server...
        assert live.viewfinder.toggles["heatmap"] is True
        page.uncheck("input[data-el=heatmap]")
        _wait_js(page, "true")
        _wait(lambda: live.viewfinder.toggles["heatmap"] is False)
        # ...and so do a button and an ROI dragged on the picture.
        page.click("#capture")
        _wait(lambda: live.capture.count == 1)
        _wait_js(page, "document.getElementById('captures').textContent === 'captures 1'")
        box = page.locator("#stream").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5, steps=5)
        page.mouse.up()
        _wait(lambda: live.scorer.roi is not None)
        x, y, w, h = live.scorer.roi
        assert abs(x - 160) <= 4 and abs(y - 120) <= 4 and abs(w - 224) <= 6 and abs(h - 120) <= 6
        page.check("input[data-el=heatmap]")
        _wait(lambda: live.viewfinder.toggles["heatmap"] is True)
        live.wait_frames(live.loop.stats.frames + 10)
        _wait_js(page, "document.getElementById('spark').toDataURL().length > 2000")
        assert violations == [], violations
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewfinder.png"))
    finally:
        page.close()


def _wait(pred, timeout=5.0):
    import time

    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the page's request")
        time.sleep(0.05)


def _wait_js(page, expression: str, timeout: float = 10.0):
    """Poll ``expression`` from Python: Playwright's ``wait_for_function`` evaluates a string
    inside the page, which the page's CSP (no 'unsafe-eval') rightly forbids."""
    import time

    end = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)
