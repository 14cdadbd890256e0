"""Hardening of the web viewfinder (issue #19, cases F1-F4, F20, F21, F33 of CASES.md),
each reproduced against the real server on 127.0.0.1 with a live simulated camera."""
from __future__ import annotations

import base64
import hashlib
import re
import socket
import time

import pytest

from device.config import load_config
from device.errors import ConfigError
from device.viewfinder.state import Viewfinder
from device.common.listen import check_token
from device.viewfinder.web.access import HostPolicy, same_origin, split_host
from device.viewfinder.web.server import PAGE, WebViewfinder, content_security_policy
from tests.device.viewfinder.web_harness import LiveViewfinder

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def live():
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    lv = LiveViewfinder()
    lv.wait_frames(3)
    yield lv
    lv.stop()


@pytest.fixture(scope="module")
def armed(tmp_path_factory):
    """With the capture and autofocus features, so forged requests have something to hit."""
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    folder = tmp_path_factory.mktemp("captures")
    lv = LiveViewfinder(features_dir=folder)
    lv.folder = folder
    lv.wait_frames(3)
    yield lv
    lv.stop()


def raw(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` as is; return what came back before the server closed or went quiet."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


# --- F1: DNS rebinding ------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/api/status", "/snapshot.jpg", "/stream.mjpg"])
def test_f1_foreign_host_is_refused(live, path):
    status, _, body = live.request("GET", path, headers={"Host": f"evil.example:{live.port}"})
    assert status == 403 and "allowed_hosts" in body["error"]
    # HEAD goes through the same check
    reply = raw(live.port, f"HEAD {path} HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 403")


def test_f1_own_names_are_served(live):
    for host in (f"127.0.0.1:{live.port}", f"localhost:{live.port}", "localhost", "LOCALHOST."):
        status, _, _ = live.request("GET", "/api/status", headers={"Host": host})
        assert status == 200, host
    # no Host at all (HTTP/1.0 style) cannot be told apart from a rebinding page: refused
    reply = raw(live.port, b"GET /api/status HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 403") or reply.startswith(b"HTTP/1.1 403")
    reply = raw(live.port, b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n")
    assert b" 403 " in reply.split(b"\r\n")[0]


def test_f1_allowed_hosts_option_adds_names(photo_grey):
    cfg = load_config(overrides={"web": {"allowed_hosts": ["focus.lan", "pi.example"]}})
    assert cfg.web.allowed_hosts == ("focus.lan", "pi.example")
    with pytest.raises(ConfigError, match="allowed_hosts"):
        load_config(overrides={"web": {"allowed_hosts": ["a b"]}})
    web = WebViewfinder("127.0.0.1:0", Viewfinder(), allowed_hosts=cfg.web.allowed_hosts)
    try:
        import http.client

        def get(host):
            c = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
            try:
                c.request("GET", "/api/status", headers={"Host": host})
                return c.getresponse().status
            finally:
                c.close()
        assert get(f"focus.lan:{web.port}") == 200 and get("pi.example") == 200
        assert get("evil.example") == 403
    finally:
        web.close()


def test_f1_host_policy_rules():
    lo = HostPolicy("127.0.0.1", 8000)
    assert lo.allows("127.0.0.1:8000") and lo.allows("localhost:8000") and lo.allows("[::1]:8000")
    assert not lo.allows("evil.example:8000") and not lo.allows("192.168.1.5") and not lo.allows(None)
    assert not lo.allows("127.0.0.1.evil.example") and not lo.allows("user@127.0.0.1")
    lan = HostPolicy("192.168.1.5", 8000)
    assert lan.allows("192.168.1.5:8000") and not lan.allows("10.0.0.1:8000")
    every = HostPolicy("0.0.0.0", 8000, hostname="focuspi")
    assert every.allows("10.0.0.7:8000") and every.allows("focuspi") and every.allows("focuspi.local:8000")
    assert not every.allows("evil.example")
    assert HostPolicy("127.0.0.1", 8000, ("*",)).allows("anything.example")
    assert split_host("[::1]:80") == ("::1", 80) and split_host("a:b") is None and split_host("") is None


# --- F2: cross-site request forgery -------------------------------------------------------

def test_f2_foreign_origin_cannot_change_the_overlay(live):
    before = dict(live.viewfinder.toggles)
    status, _, body = live.request("POST", "/api/overlay", {"hud": not before["hud"]},
                                   headers={"Origin": "http://evil.example"})
    assert status == 403 and "evil.example" in body["error"]
    status, _, _ = live.request("POST", "/api/overlay", {"hud": not before["hud"]},
                                headers={"Origin": "null"})
    assert status == 403
    status, _, _ = live.request("POST", "/api/overlay", {"hud": not before["hud"]},
                                headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    # the simple-request forms a page can send without a preflight
    status, _, body = live.request("POST", "/api/overlay", b'{"hud": false}',
                                   headers={"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in body["error"]
    assert live.viewfinder.toggles == before


def test_f2_own_page_still_works(live):
    origin = f"http://127.0.0.1:{live.port}"
    status, _, body = live.request("POST", "/api/overlay", {"zoom": True},
                                   headers={"Origin": origin, "Sec-Fetch-Site": "same-origin",
                                            "Content-Type": "application/json; charset=utf-8"})
    assert status == 200 and body["overlay"]["zoom"] is True
    live.request("POST", "/api/overlay", {"zoom": False})
    assert same_origin("http://localhost:80", "localhost") and not same_origin("https://127.0.0.1", "127.0.0.1")


def test_f2_forged_shutter_and_autofocus_do_nothing(armed):
    status, _, _ = armed.request("POST", "/api/capture", None, headers={"Origin": "http://evil.example"})
    assert status == 403
    status, _, _ = armed.request("POST", "/api/capture", None)          # no body, no type
    assert status == 415
    status, _, _ = armed.request("POST", "/api/autofocus", b"{}", headers={"Content-Type": "text/plain"})
    assert status == 415
    status, _, _ = armed.request("POST", "/api/autofocus", {}, headers={"Origin": "http://evil.example"})
    assert status == 403
    armed.wait_frames(armed.loop.stats.frames + 3)
    assert armed.autofocus.runs == 0 and armed.capture.queued == 0
    assert list(armed.folder.iterdir()) == []


# --- F3: the cookie comes only from the verified token --------------------------------------

def test_f3_crlf_in_url_token_is_neither_reflected_nor_set_as_cookie():
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    lv = LiveViewfinder(token=TOKEN)
    try:
        reply = raw(lv.port, b"GET /?token=abc%0d%0aSet-Cookie:%20injected=1 HTTP/1.1\r\n"
                             b"Host: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
                             b"Connection: close\r\n\r\n")
        head = reply.split(b"\r\n\r\n")[0]
        assert head.startswith(b"HTTP/1.1 401") and b"Set-Cookie" not in head and b"injected" not in head
        status, headers, _ = lv.request("GET", f"/?token={TOKEN}")
        assert status == 303
        assert headers["Set-Cookie"] == f"fa_token={TOKEN}; Path=/; HttpOnly; SameSite=Strict"
    finally:
        lv.stop()


# --- F4: security headers ---------------------------------------------------------------------

def test_f4_every_response_carries_the_security_headers(live):
    for method, path in (("GET", "/"), ("GET", "/api/status"), ("GET", "/snapshot.jpg"),
                         ("GET", "/nope"), ("POST", "/api/overlay")):
        _, headers, _ = live.request(method, path, {} if method == "POST" else None)
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
    stream_head = raw(live.port, b"HEAD /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert b"X-Content-Type-Options: nosniff" in stream_head


def test_f4_csp_allows_exactly_the_page_s_inline_script_and_style():
    page = PAGE.read_bytes()
    csp = content_security_policy(page)
    script = re.search(rb"<script>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "unsafe-inline" not in csp
    # a page changed by one byte gets another hash: the policy follows the file
    assert content_security_policy(page.replace(b"use strict", b"use  strict")) != csp
    assert "script-src 'none'" in content_security_policy(b"<html></html>")


# --- F20: deep JSON ---------------------------------------------------------------------------

def test_f20_deeply_nested_json_is_a_400_not_a_500(live):
    status, _, body = live.request("POST", "/api/overlay", b"[" * 2000 + b"]" * 2000)
    assert status == 400 and "deep" in body["error"]
    status, _, _ = live.request("GET", "/api/status")
    assert status == 200


def test_two_content_lengths_are_refused(live):
    reply = raw(live.port, b"POST /api/overlay HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 2\r\n"
                           b"Content-Length: 14\r\n\r\n{\"hud\": false}")
    assert reply.startswith(b"HTTP/1.1 400")
    reply = raw(live.port, b"POST /api/overlay HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 14\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n{\"hud\": false}")
    assert reply.startswith(b"HTTP/1.1 400")
    assert live.viewfinder.toggles["hud"] is True


# --- F21, F33: token characters checked at start-up -----------------------------------------

@pytest.mark.parametrize("token", ["tökén☃-12345", "abc;def ghi123", 'quote"token1', "comma,token1",
                                   "tab\ttoken12", "short"])
def test_f21_f33_unusable_tokens_are_refused_at_startup(token):
    with pytest.raises(ConfigError, match="web token"):
        check_token(token)
    with pytest.raises(ConfigError, match="web token"):
        WebViewfinder("127.0.0.1:0", Viewfinder(), token=token)


def test_f21_f33_bad_token_is_one_line_and_exit_2(capsys):
    from device.cli import main

    rc = main(["--log-level", "warning", "run", "--headless", "--source", "sim", "--frames", "1", "--web", "127.0.0.1:0",
               "--web-token", "abc;def ghi123"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "';'" in err[0] and "web.token" in err[0] and "Traceback" not in err[0], err


def test_a_token_with_plus_and_slash_logs_in_from_the_url():
    pytest.importorskip("skimage.data", reason="scikit-image not installed: real-photo test skipped")
    token = "b64+like/token=="
    lv = LiveViewfinder(token=token)
    try:
        status, headers, _ = lv.request("GET", f"/?token={token}")
        assert status == 303
        cookie = headers["Set-Cookie"].split("; ")[0]
        assert cookie == f"fa_token={token}"
        status, _, _ = lv.request("GET", "/api/status", headers={"Cookie": cookie})
        assert status == 200
    finally:
        lv.stop()
