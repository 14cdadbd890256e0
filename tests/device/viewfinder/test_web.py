"""The web viewfinder over real HTTP on 127.0.0.1, with a live simulated camera loop."""
from __future__ import annotations

import json
import socket
import time

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from device.errors import ConfigError
from device.viewfinder.state import Viewfinder
from device.common.listen import parse_listen
from device.viewfinder.web.access import cookie_token, is_loopback, require_token, token_ok
from device.viewfinder.web.server import BOUNDARY, WebViewfinder
from tests.device.viewfinder.web_harness import LiveViewfinder

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def live():
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    lv = LiveViewfinder()
    lv.wait_frames(5)
    yield lv
    lv.stop()


def read_parts(port: int, n: int, timeout: float = 5.0) -> list[bytes]:
    """Read ``n`` JPEG parts from /stream.mjpg with a raw socket (bounded)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        buf, parts = b"", []
        end = time.monotonic() + timeout
        while len(parts) < n and time.monotonic() < end:
            buf += s.recv(65536)
            while True:
                i = buf.find(b"Content-Length: ", buf.find(f"--{BOUNDARY}".encode()))
                if i < 0:
                    break
                j = buf.find(b"\r\n\r\n", i)
                if j < 0:
                    break
                size = int(buf[i + 16:buf.find(b"\r\n", i)])
                if len(buf) < j + 4 + size:
                    break
                parts.append(buf[j + 4:j + 4 + size])
                buf = buf[j + 4 + size:]
        return parts
    finally:
        s.close()


# --- access (pure) -------------------------------------------------------------------

def test_listen_addresses_and_token_rules():
    assert parse_listen("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8000", ":8000", "host:http", "host:70000", "a b:1"):
        with pytest.raises(ConfigError):
            parse_listen(bad)
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with pytest.raises(ConfigError, match="without a token"):
        require_token("0.0.0.0", None)
    require_token("0.0.0.0", TOKEN)
    require_token("127.0.0.1", None)
    assert token_ok(None, None) and token_ok(TOKEN, TOKEN)
    assert not token_ok(TOKEN, None) and not token_ok(TOKEN, TOKEN + "x")
    assert cookie_token("a=1; fa_token=abc; b=2") == "abc" and cookie_token(None) is None


def test_refuses_a_public_address_without_a_token():
    with pytest.raises(ConfigError, match="without a token"):
        WebViewfinder("0.0.0.0:0", Viewfinder())


def test_port_in_use_is_a_clear_config_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot serve"):
            WebViewfinder(f"127.0.0.1:{port}", Viewfinder())


# --- the live server -----------------------------------------------------------------

def test_page_and_status(live):
    status, headers, page = live.request("GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"stream.mjpg" in page and b"api/status" in page
    status, _, s = live.request("GET", "/api/status")
    assert status == 200
    for key in ("focus", "fps", "source", "frames", "history", "overlay", "features", "frame_size"):
        assert key in s, key
    assert s["source"]["name"] == "sim:mosaic" and s["frame_size"] == [640, 480]
    assert s["focus"]["value"] > 0 and s["frames"] > 0
    assert s["features"] == {"autofocus": False, "capture": False, "roi": True, "cnn": False,
                             "defects": False, "heatmap_cnn": False, "motor": False,
                             "gallery": False}
    assert "autofocus" not in s and "capture" not in s and s["motor"] is None


def test_status_moves_with_the_frames(live):
    _, _, a = live.request("GET", "/api/status")
    live.wait_frames(a["frames"] + 5)
    _, _, b = live.request("GET", "/api/status")
    assert b["frames"] > a["frames"] and b["frame"] != a["frame"]
    assert len(b["history"]) >= 5 and b["history"][-1][0] == 0.0


def test_mjpeg_stream_delivers_decodable_distinct_frames(live):
    parts = read_parts(live.port, 3)
    assert len(parts) == 3
    imgs = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in parts]
    assert all(i is not None and i.shape == (480, 640, 3) for i in imgs)
    assert not np.array_equal(imgs[0], imgs[2])       # noise differs frame to frame
    status, headers, jpeg = live.request("GET", "/snapshot.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"


def test_a_client_vanishing_mid_stream_disturbs_nobody(live):
    rude = socket.create_connection(("127.0.0.1", live.port), timeout=5)
    rude.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    rude.recv(1000)
    rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    rude.close()                                   # RST, in the middle of a part
    frames = live.loop.stats.frames
    parts = read_parts(live.port, 3)               # another viewer still gets frames
    assert len(parts) == 3
    live.wait_frames(frames + 5)                   # and the loop keeps running
    end = time.monotonic() + 5
    while live.web.stream.clients and time.monotonic() < end:
        time.sleep(0.05)
    assert live.web.stream.clients == 0


def test_overlay_toggles_round_trip(live):
    status, _, body = live.request("POST", "/api/overlay", {"heatmap": True, "zoom": True})
    assert status == 200 and body["overlay"]["heatmap"] and body["overlay"]["zoom"]
    _, _, s = live.request("GET", "/api/status")
    assert s["overlay"]["heatmap"] is True
    live.request("POST", "/api/overlay", {"heatmap": False, "zoom": False})
    assert live.viewfinder.toggles["heatmap"] is False


def test_peak_reset(live):
    live.viewfinder.peak.update(1e9)              # as if the lens had passed a huge peak
    _, _, s = live.request("GET", "/api/status")
    assert s["focus"]["peak"] == 1e9
    status, _, _ = live.request("POST", "/api/peak/reset", {})
    assert status == 200
    live.wait_frames(live.loop.stats.frames + 2)
    _, _, s = live.request("GET", "/api/status")
    assert 0 < s["focus"]["peak"] < 1e6


def test_roi_round_trip_and_errors(live):
    status, _, body = live.request("POST", "/api/roi", {"roi": [100, 80, 200, 160]})
    assert status == 200 and body["roi"] == [100, 80, 200, 160]
    assert live.scorer.roi == (100, 80, 200, 160)
    live.wait_frames(live.loop.stats.frames + 3)
    _, _, s = live.request("GET", "/api/status")
    assert s["roi"] == [100, 80, 200, 160]
    status, _, body = live.request("POST", "/api/roi", {"roi": [600, 400, 100, 100]})
    assert status == 422 and "outside" in body["error"]
    assert live.scorer.roi == (100, 80, 200, 160)          # a bad ROI changes nothing
    for bad in ({"roi": [1, 2, 3]}, {"roi": "1,2,3,4"}, {"roi": [1, 2, 3, 4.5]}, {}, {"roi": [1, 2, 3, 4], "x": 1}):
        status, _, body = live.request("POST", "/api/roi", bad)
        assert status == 400 and body["error"], bad
    status, _, body = live.request("POST", "/api/roi", {"roi": None})
    assert status == 200 and live.scorer.roi is None


@pytest.mark.parametrize("method,path,body,expect", [
    ("POST", "/api/overlay", b"{not json", 400),
    ("POST", "/api/overlay", b"[1, 2]", 400),
    ("POST", "/api/overlay", {"sparkles": True}, 400),
    ("POST", "/api/overlay", {"peaking": "yes"}, 400),
    ("POST", "/api/overlay", {}, 400),
    ("POST", "/api/overlay", b"x" * 5000, 413),
    ("POST", "/api/nothing", {}, 404),
    ("POST", "/api/autofocus", {}, 404),        # feature not built: hidden in the page, 404 here
    ("POST", "/api/capture", {}, 404),
    ("POST", "/api/peak/reset", {"now": 1}, 400),
    ("GET", "/api/overlay", None, 405),
    ("PUT", "/api/overlay", {}, 405),
    ("GET", "/nope", None, 404),
])
def test_bad_requests_get_a_json_4xx(live, method, path, body, expect):
    status, headers, payload = live.request(method, path, body)
    assert status == expect
    assert headers["Content-Type"] == "application/json" and payload["error"]


def test_controls_of_present_features_call_them(tmp_path):
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    lv = LiveViewfinder(features_dir=tmp_path)
    try:
        lv.wait_frames(3)
        _, _, s = lv.request("GET", "/api/status")
        assert s["features"]["autofocus"] and s["features"]["capture"]
        # one level each: the sinks' own status, not wrapped again
        assert s["autofocus"]["state"] == "idle" and "af" not in s["autofocus"]
        assert s["capture"]["count"] == 0 and s["capture"]["captures"] == 0 and "capture" not in s["capture"]
        status, _, body = lv.request("POST", "/api/autofocus", {})
        assert status == 200 and body["autofocus"]["state"] in ("idle", "scanning")
        lv.wait_frames(lv.loop.stats.frames + 3)
        assert lv.autofocus.runs == 1                    # the trigger reached the loop
        status, _, body = lv.request("POST", "/api/capture", {})
        assert status == 200 and body["capture"]["ok"] is True, body
        end = time.monotonic() + 10
        while lv.capture.count < 1 and time.monotonic() < end:
            time.sleep(0.05)
        saved = sorted(p.name for p in tmp_path.iterdir())
        assert lv.capture.count == 1 and any(n.endswith(".json") for n in saved), saved
        _, _, s = lv.request("GET", "/api/status")
        assert s["capture"]["count"] == 1 and s["capture"]["last"]
    finally:
        lv.stop()


def test_status_carries_defects_with_numpy_values(photo_grey):
    from device.loop.result import FrameResult
    from device.sources.base import Frame
    import http.client

    vf = Viewfinder()
    web = WebViewfinder("127.0.0.1:0", vf)          # no loop: the frame below stays the newest
    try:
        frame = Frame(grey=photo_grey, timestamp=1.0, index=7)
        vf.on_frame(frame, FrameResult(
            frame=7, timestamp=1.0, focus=np.float64(3.5), measures={"tenengrad": np.float32(2)},
            tile_map=np.ones((3, 4), np.float32),
            defects=[{"x": np.int64(5), "y": np.float32(6.5), "kind": "hot", "confidence": np.float64(0.9)}]))
        c = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
        c.request("GET", "/api/status")
        r = c.getresponse()
        s = json.loads(r.read())
        c.close()
        assert r.status == 200 and s["features"]["defects"] and s["focus"]["value"] == 3.5
        assert s["defects"] == [{"x": 5, "y": 6.5, "kind": "hot", "confidence": 0.9}]
    finally:
        web.close()


def test_the_encoder_lets_go_of_the_picture_it_sent(photo_bgr):
    """Once a JPEG is out, the encoder thread does not keep the composed picture (0.9 MB
    at 640x480) while it waits for the next frame."""
    import weakref

    from device.sources.base import Frame
    from device.viewfinder.web.stream import MjpegStream
    from tests.device.results import result

    vf = Viewfinder()
    drawn = []
    compose = vf.compose

    def watched(*args, **kw):         # the same picture, with a weak reference kept
        picture = compose(*args, **kw)
        drawn.append(weakref.ref(picture))
        return picture

    vf.compose = watched
    stream = MjpegStream(vf)
    try:
        stream.add_client()
        vf.on_frame(Frame(grey=cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2GRAY), color=photo_bgr,
                          timestamp=1.0, index=0), result(1.0))
        deadline = time.monotonic() + 10
        while (stream.encoded < 1 or drawn[0]() is not None) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.encoded == 1 and stream.jpeg[:2] == b"\xff\xd8"
        assert drawn[0]() is None, "the encoder still holds the composed picture"
    finally:
        stream.close()


def test_token_from_url_once_then_cookie():
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    lv = LiveViewfinder(token=TOKEN)
    try:
        lv.wait_frames(2)
        for path in ("/", "/api/status", "/stream.mjpg", "/snapshot.jpg"):
            status, _, body = lv.request("GET", path)
            assert status == 401 and body["error"], path
        status, _, body = lv.request("POST", "/api/overlay", {"peaking": False})
        assert status == 401 and lv.viewfinder.toggles["peaking"] is True
        status, _, _ = lv.request("GET", "/?token=wrong-token-xx")
        assert status == 401
        status, headers, _ = lv.request("GET", f"/?token={TOKEN}")
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in headers["Set-Cookie"]
        status, _, page = lv.request("GET", "/", headers={"Cookie": cookie})
        assert status == 200 and b"<html" in page
        status, _, s = lv.request("GET", "/api/status", headers={"Cookie": cookie})
        assert status == 200 and s["frames"] > 0
        status, _, _ = lv.request("GET", "/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
    finally:
        lv.stop()


# --- fuzzing the controls ----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=12)
bodies = (st.dictionaries(st.sampled_from(["roi", "peaking", "heatmap", "zoom", "hud", "x", ""]), json_values,
                          max_size=4).map(lambda d: json.dumps(d).encode())
          | json_values.map(lambda v: json.dumps(v).encode())
          | st.binary(max_size=64))
paths = st.sampled_from(["/api/overlay", "/api/roi", "/api/peak/reset", "/api/autofocus",
                         "/api/capture", "/api/status", "/api/x"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=paths, body=bodies)
def test_fuzzed_controls_never_break_the_server_or_the_loop(live, path, body):
    status, headers, payload = live.request("POST", path, body)
    assert 200 <= status < 500, (status, payload)
    assert headers["Content-Type"] == "application/json"
    if status >= 400:
        assert payload["error"]
    assert live._thread.is_alive() and live.loop.stats.faults == 0


def test_the_loop_survived_the_fuzzing(live):
    frames = live.loop.stats.frames
    live.wait_frames(frames + 3)
    status, _, s = live.request("GET", "/api/status")
    assert status == 200
    live.request("POST", "/api/roi", {"roi": None})
    live.request("POST", "/api/overlay", {e: e in ("peaking", "hud", "roi", "defects") for e in s["overlay"]})
