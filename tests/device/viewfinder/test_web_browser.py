"""The viewfinder page in a real headless browser (Debian's chromium through Playwright).

Skips with a visible reason when Playwright or chromium is missing, so ``make test`` passes
on a machine without them. Leaves screenshots in ``test-artifacts/`` (``viewfinder.png``,
``viewfinder-desktop.png``, ``viewfinder-phone.png``, ``viewfinder-night.png``; git-ignored).
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
        _wait_js(page, "/^(CNN|CNN\\+curve|curve) (sharp|defocus|motion|flat) /.test(document.getElementById('cnn').textContent)")
        frame, result, _ = live.viewfinder.latest()
        assert result.cnn is not None and result.cnn.tile_map is not None
        heat = live.viewfinder.layers(frame, result).heat
        assert heat is not None and heat.shape == result.cnn.tile_map.shape
        # Controls of the features this run has are shown.
        assert page.is_visible("#autofocus") and page.is_visible("#capture")
        assert page.is_visible("#roi-controls")
        # Panels follow the features: this run has a motor and captures, no defect map.
        _wait_js(page, "!document.getElementById('motor-panel').hidden")
        assert page.is_visible("#motor-panel") and page.is_visible("#gallery-panel")
        assert not page.is_visible("#defects-panel")
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


@pytest.fixture
def rig(tmp_path):
    """The rig without the focus net: motor, autofocus, capture and the gallery."""
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    lv = LiveViewfinder(token=TOKEN, features_dir=tmp_path)
    lv.wait_frames(3)
    yield lv
    lv.stop()


def _open(browser, rig, viewport, query=""):
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    violations: list = []
    page.on("console", lambda msg: violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    page.goto(f"http://127.0.0.1:{rig.port}/?token={TOKEN}")
    if query:
        page.goto(f"http://127.0.0.1:{rig.port}/{query}")
    _wait_js(page, "document.getElementById('stream').naturalWidth > 0")
    return context, page, violations


def _text(page, id_: str) -> str:
    return page.evaluate(f"document.getElementById('{id_}').textContent")


def test_motor_controls_move_the_simulated_lens_and_refuse_a_goto_past_the_limit(browser, rig):
    context, page, violations = _open(browser, rig, {"width": 1100, "height": 900})
    try:
        _wait_js(page, "!document.getElementById('motor-panel').hidden")
        m = rig.web.motor.status()
        lo, hi = m.limits
        p0 = rig.motor.position
        page.click("#jog-fine-up" if p0 + 3 * m.coarse_step <= hi else "#jog-fine-down")
        sign = 1 if p0 + 3 * m.coarse_step <= hi else -1
        _wait(lambda: rig.motor.position == p0 + sign * m.fine_step and not rig.motor.busy)
        _wait_js(page, f"document.getElementById('motor-pos').textContent === '{rig.motor.position}'")
        # The keyboard: ']' is a fine jog up, '}' a coarse one.
        p1 = rig.motor.position
        page.keyboard.press("}" if sign > 0 else "{")
        _wait(lambda: rig.motor.position == p1 + sign * m.coarse_step and not rig.motor.busy)
        _wait_js(page, f"document.getElementById('motor-pos').textContent === '{rig.motor.position}'")
        # A goto past the upper limit shows the server's error; the motor stays.
        here, moves = rig.motor.position, rig.motor.moves
        page.fill("#goto-pos", str(hi + 100))
        page.click("#goto")
        _wait_js(page, "document.getElementById('motor-msg').textContent.includes('upper soft limit')")
        rig.wait_frames(rig.loop.stats.frames + 5)
        assert rig.motor.position == here and rig.motor.moves == moves
        assert _text(page, "motor-pos") == str(here)
        # A goto inside the limits goes there; the autofocus's result is on the page.
        goal = (lo + hi) // 2
        page.fill("#goto-pos", str(goal))
        page.press("#goto-pos", "Enter")
        _wait(lambda: rig.motor.position == goal and not rig.motor.busy)
        page.evaluate("document.activeElement.blur()")    # keys typed into a field stay there
        page.keyboard.press("a")
        _wait(lambda: rig.autofocus.runs == 1 and rig.autofocus.state in ("focused", "failed"), 20)
        _wait_js(page, "/^AF (focused after [0-9]+ frames|failed: )/.test("
                       "document.getElementById('af-result').textContent)")
        assert violations == [], violations
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewfinder-desktop.png"), full_page=True)
        print(f"screenshot: {ARTIFACTS / 'viewfinder-desktop.png'}")
    finally:
        context.close()


def test_the_gallery_lists_a_capture_from_the_page_and_downloads_it_whole(browser, rig):
    context, page, violations = _open(browser, rig, {"width": 1100, "height": 900})
    try:
        _wait_js(page, "!document.getElementById('gallery-panel').hidden")
        page.click("#capture")
        _wait(lambda: rig.capture.count == 1)
        name = os.path.basename(rig.capture.last_path)
        link = f"#gallery a[download='{name}']"
        _wait_js(page, f"document.querySelector(\"{link}\") !== null")
        # The thumbnail decoded in the browser.
        _wait_js(page, f"document.querySelector(\"#gallery img[alt='{name}']\").naturalWidth > 0")
        with page.expect_download() as info:
            page.click(link)
        download = info.value
        assert download.suggested_filename == name
        with open(download.path(), "rb") as fh:
            assert fh.read() == (rig.capture.dir / name).read_bytes()
        assert violations == [], violations
    finally:
        context.close()


def test_a_phone_screen_has_no_horizontal_scroll_and_big_targets(browser, rig):
    context, page, violations = _open(browser, rig, {"width": 375, "height": 740})
    try:
        _wait_js(page, "!document.getElementById('motor-panel').hidden")
        _wait_js(page, "!document.getElementById('gallery-panel').hidden")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, width
        box = page.locator("#stream").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375 and box["width"] >= 300
        small = page.evaluate("""[...document.querySelectorAll('button')]
            .filter((b) => b.offsetParent !== null)
            .map((b) => [b.id || b.textContent, b.getBoundingClientRect().height,
                         b.getBoundingClientRect().width])
            .filter((r) => r[1] < 44 || r[2] < 44)""")
        assert small == [], small
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewfinder-phone.png"), full_page=True)
        print(f"screenshot: {ARTIFACTS / 'viewfinder-phone.png'}")
        assert violations == [], violations
    finally:
        context.close()


def test_the_night_theme_is_red_on_black_and_remembered(browser, rig):
    context, page, violations = _open(browser, rig, {"width": 800, "height": 700}, "?theme=night")
    try:
        assert page.evaluate("document.body.classList.contains('night')")
        bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        fg = page.evaluate("getComputedStyle(document.body).color")
        assert bg == "rgb(0, 0, 0)"
        r, g, b = (int(v) for v in fg[fg.index("(") + 1:-1].split(","))
        assert r > 100 and g == 0 and b == 0, fg
        page.goto(f"http://127.0.0.1:{rig.port}/")            # remembered in localStorage
        assert page.evaluate("document.body.classList.contains('night')")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewfinder-night.png"))
        page.click("#theme")
        assert not page.evaluate("document.body.classList.contains('night')")
        page.goto(f"http://127.0.0.1:{rig.port}/")
        assert not page.evaluate("document.body.classList.contains('night')")
        assert violations == [], violations
    finally:
        context.close()


def test_the_defect_panel_marks_a_defect_as_known(browser, tmp_path):
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    import json

    path = tmp_path / "defects.json"          # one confirmed hot pixel at x=80, y=60
    path.write_text(json.dumps({"version": 2, "shape": [480, 640], "frames": 40,
                                "tracks": [[60, 80, 0, 7, 7, 34, 1750.0]]}))
    lv = LiveViewfinder(token=TOKEN, defect_map=path)
    context = None
    try:
        lv.wait_frames(3)
        context, page, violations = _open(browser, lv, {"width": 1100, "height": 800})
        _wait_js(page, "!document.getElementById('defects-panel').hidden")
        _wait_js(page, "document.querySelectorAll('#markers .marker').length === 1")
        assert "hot at 80, 60" in _text(page, "defect-list")
        # The marker sits on the defect, in the displayed picture's scale.
        img = page.locator("#stream").bounding_box()
        mark = page.locator("#markers .marker").bounding_box()
        cx, cy = mark["x"] + mark["width"] / 2, mark["y"] + mark["height"] / 2
        assert abs(cx - (img["x"] + 80.5 * img["width"] / 640)) < 2
        assert abs(cy - (img["y"] + 60.5 * img["height"] / 480)) < 2
        page.click("#defect-list button")
        _wait(lambda: lv.defects.map.known == {(80, 60)})
        _wait_js(page, "document.getElementById('defect-list').textContent.includes('known')")
        _wait_js(page, "document.querySelector('#markers .marker').classList.contains('known')")
        assert violations == [], violations
    finally:
        if context is not None:
            context.close()
        lv.stop()


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
