"""The captures gallery against the real server: the listing, downloads, thumbnails, and
every way a name could reach a file that is not a capture."""
from __future__ import annotations

import json
import os
import socket
import time

import cv2
import numpy as np
import pytest

from device.viewfinder.web.api import ApiError
from device.viewfinder.web.gallery import check_name
from tests.device.viewfinder.web_harness import LiveViewfinder

TOKEN = "gallery-test-token"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    lv = LiveViewfinder(features_dir=tmp_path_factory.mktemp("captures"), token=TOKEN)
    lv.wait_frames(3)
    yield lv
    lv.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def get(lv, path, headers=None):
    return lv.request("GET", path, headers={**AUTH, **(headers or {})})


def _capture(lv) -> str:
    before = lv.capture.count
    status, _, body = lv.request("POST", "/api/capture", {}, headers=AUTH)
    assert status == 200 and body["capture"]["ok"], body
    end = time.monotonic() + 10
    while lv.capture.count == before:
        assert time.monotonic() < end, "the capture was not written"
        time.sleep(0.02)
    return os.path.basename(lv.capture.last_path)


def test_the_listing_shows_a_capture_with_its_sidecar(live):
    name = _capture(live)
    status, _, listing = get(live, "/api/captures")
    assert status == 200 and listing["dir"] == str(live.capture.dir)
    singles = [i for i in listing["items"] if i["kind"] == "capture"]
    first = singles[0]                                     # the newest single capture
    assert first["name"] == name
    side = json.loads((live.capture.dir / name).with_suffix(".json").read_text())
    assert first["trigger"] == "manual" and first["lens_position"] == side["lens_position"]
    assert first["size"] == (live.capture.dir / name).stat().st_size and first["thumb"] is True
    assert first["time"] == side["captured_at"]
    assert first["focus"] == pytest.approx(side["scores"]["focus"])


def test_newest_first_and_a_bracket_is_one_group(live, photo_bgr):
    d = live.capture.dir
    old = _capture(live)
    frames = []
    for i, pos in enumerate((480, 500, 520)):
        img = f"focus-20260101-000000-f00000{i}-b00{i}.png"
        cv2.imwrite(str(d / img), photo_bgr[::4, ::4])
        (d / img).with_suffix(".json").write_text(json.dumps(
            {"trigger": "bracket", "lens_position": pos, "scores": {"focus": 1.0 + i}}))
        frames.append({"image": img, "lens_position": pos, "focus": 1.0 + i})
    manifest = d / "bracket-20260101-000000.json"
    manifest.write_text(json.dumps({"frames": frames, "best_position": 500, "step": 20}))
    later = time.time() + 60
    os.utime(manifest, (later, later))
    _, _, listing = get(live, "/api/captures")
    items = listing["items"]
    assert items[0]["kind"] == "bracket" and items[0]["name"] == manifest.name
    assert [f["lens_position"] for f in items[0]["frames"]] == [480, 500, 520]
    assert items[0]["best_position"] == 500 and items[0]["step"] == 20
    singles = [i["name"] for i in items if i["kind"] == "capture"]
    assert not any(f["image"] in singles for f in frames)      # shown once, in the group
    assert old in singles
    mtimes = [os.stat(d / i["name"]).st_mtime for i in items]
    assert mtimes == sorted(mtimes, reverse=True)


def test_download_is_the_file_byte_for_byte_as_an_attachment(live):
    name = _capture(live)
    status, headers, body = get(live, f"/captures/{name}")
    assert status == 200 and body == (live.capture.dir / name).read_bytes()
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, side = get(live, f"/captures/{name[:-4]}.json")
    assert status == 200 and headers["Content-Type"] == "application/json"


def test_a_thumbnail_is_a_small_inline_jpeg(live):
    name = _capture(live)
    status, headers, body = get(live, f"/captures/{name}?thumb=1")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert headers["Content-Disposition"].startswith("inline")
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    full = cv2.imread(str(live.capture.dir / name))
    assert max(img.shape[:2]) <= 240 and img.shape[1] / img.shape[0] == pytest.approx(
        full.shape[1] / full.shape[0], rel=0.02)
    again = get(live, f"/captures/{name}?thumb=1")[2]
    assert again == body                                   # cached: the same bytes


def _raw_get(port: int, target: bytes) -> int:
    """A request line exactly as given (http.client refuses NUL and spaces)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                  + TOKEN.encode() + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return int(data.split(b" ", 2)[1])
    finally:
        s.close()


@pytest.fixture(scope="module")
def traps(live, tmp_path_factory):
    """Things in and around the capture folder that must never be served."""
    d = live.capture.dir
    outside = tmp_path_factory.mktemp("outside") / "secret.jpg"
    outside.write_bytes(b"secret")
    (d.parent / "beside.jpg").write_bytes(b"beside")
    inside = d / "real.jpg"
    inside.write_bytes(b"real")
    os.symlink(outside, d / "out-link.jpg")
    os.symlink(inside, d / "in-link.jpg")                  # even a link inside is refused
    (d / ".focus-x.jpg.fa-tmp").write_bytes(b"half")
    (d / ".hidden.jpg").write_bytes(b"hidden")
    (d / "notes.txt").write_text("not a capture")
    (d / "sub.jpg").mkdir()
    os.mkfifo(d / "pipe.jpg")
    return outside


@pytest.mark.parametrize("path, expect", [
    ("/captures/../beside.jpg", 400),
    ("/captures/..%2fbeside.jpg", 400),
    ("/captures/%2e%2e%2fbeside.jpg", 400),
    ("/captures/%2e%2e/beside.jpg", 400),
    ("/captures/..", 400),
    ("/captures//etc/passwd", 400),
    ("/captures/%2Fetc%2Fpasswd", 400),
    ("/captures/..\\beside.jpg", 400),
    ("/captures/real.jpg%00.png", 400),
    ("/captures/out-link.jpg", 403),
    ("/captures/in-link.jpg", 403),
    ("/captures/out-link.jpg?thumb=1", 403),
    ("/captures/.focus-x.jpg.fa-tmp", 404),
    ("/captures/.hidden.jpg", 404),
    ("/captures/notes.txt", 404),
    ("/captures/sub.jpg", 403),
    ("/captures/pipe.jpg", 403),
    ("/captures/missing.jpg", 404),
])
def test_refusals(live, traps, path, expect):
    status, headers, body = get(live, path)
    assert status == expect, body
    assert isinstance(body, dict) and body["status"] == expect     # a JSON error, no file
    assert "Content-Disposition" not in headers


def test_a_nul_in_the_request_line_is_refused(live, traps):
    assert _raw_get(live.port, b"/captures/real.jpg\x00.png") == 400


def test_the_listing_leaves_out_links_hidden_and_odd_files(live, traps):
    _, _, listing = get(live, "/api/captures")
    names = {i["name"] for i in listing["items"]}
    assert "real.jpg" in names
    assert not names & {"out-link.jpg", "in-link.jpg", ".hidden.jpg", "notes.txt", "sub.jpg",
                        "pipe.jpg", ".focus-x.jpg.fa-tmp"}


def test_the_gallery_keeps_the_access_rules(live, traps):
    status, _, _ = live.request("GET", "/captures/real.jpg")                 # no token
    assert status == 401
    status, _, _ = live.request("GET", "/api/captures")
    assert status == 401
    status, _, _ = get(live, "/captures/real.jpg", headers={"Host": "evil.example"})
    assert status == 403
    status, _, _ = live.request("POST", "/captures/real.jpg", {}, headers=AUTH)
    assert status == 405


def test_no_capture_feature_no_gallery():
    pytest.importorskip("skimage.data")
    lv = LiveViewfinder()
    try:
        assert lv.request("GET", "/api/captures")[0] == 404
        assert lv.request("GET", "/captures/x.jpg")[0] == 404
    finally:
        lv.stop()


@pytest.mark.parametrize("name", ["a/b.jpg", "..", "a\\b.jpg", "a\0.jpg", "%2e.jpg", "", "x" * 300])
def test_check_name_refuses_what_is_not_one_plain_name(name):
    with pytest.raises(ApiError) as exc:
        check_name(name)
    assert exc.value.status == 400


def test_check_name_takes_capture_names():
    for name in ("focus-20260101-000000-f000001.jpg", "focus-x-manual-1.png", "a.DNG",
                 "bracket-20260101-000000.json"):
        assert check_name(name) == name


@pytest.mark.parametrize("w, h", [(4056, 3040), (1280, 960), (640, 480), (200, 150)])
def test_a_thumbnail_fills_its_box_from_any_capture_size(photo_bgr, w, h):
    from device.viewfinder.web.gallery import THUMB_PX, make_thumbnail

    img = cv2.resize(photo_bgr, (w, h), interpolation=cv2.INTER_AREA)
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    thumb = cv2.imdecode(np.frombuffer(make_thumbnail(data), np.uint8), cv2.IMREAD_COLOR)
    assert max(thumb.shape[:2]) == min(THUMB_PX, w)         # never upscaled, never too small
    small = cv2.resize(img, (thumb.shape[1], thumb.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(thumb.astype(int) - small).mean() < 8      # the same picture


def test_a_big_folder_lists_the_newest_and_reads_only_their_sidecars(tmp_path, monkeypatch, photo_bgr):
    import device.viewfinder.web.gallery as gallery

    monkeypatch.setattr(gallery, "LIST_MAX", 5)
    jpeg = cv2.imencode(".jpg", photo_bgr[::8, ::8])[1].tobytes()
    for i in range(12):
        img = tmp_path / f"focus-20260101-000000-f{i:06d}.jpg"
        img.write_bytes(jpeg)
        img.with_suffix(".json").write_text(json.dumps({"trigger": "trap", "lens_position": i}))
        os.utime(img, (1000 + i, 1000 + i))
    g = gallery.Gallery(tmp_path)
    listing = g.listing()
    assert listing.total == 12 and listing.truncated
    assert [i.lens_position for i in listing.items] == [11, 10, 9, 8, 7]
    assert len(g._sidecars) == 5
