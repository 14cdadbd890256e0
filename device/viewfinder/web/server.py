"""The web viewfinder server: page, MJPEG stream, status JSON and control endpoints.

Routes (all behind the token when one is set):

* ``GET /``: the page. ``/?token=T`` sets a cookie and redirects to ``/`` so the token
  leaves the address bar and the history.
* ``GET /stream.mjpg``: ``multipart/x-mixed-replace`` JPEGs, newest frame first.
* ``GET /snapshot.jpg``: one JPEG.
* ``GET /api/status``: scores, fps, source, frame count, history, feature flags.
* ``POST /api/overlay`` ``{"peaking": true, ...}``; ``POST /api/peak/reset``;
  ``POST /api/roi`` ``{"roi": [x, y, w, h] | null}`` (scored-frame pixels);
  ``POST /api/autofocus``; ``POST /api/capture``.

Every request must name an allowed ``Host`` (``access.HostPolicy``: DNS rebinding), and every
POST must be ``Content-Type: application/json`` from no foreign ``Origin`` or
``Sec-Fetch-Site`` (cross-site request forgery: a browser sends such a POST only after a CORS
preflight, which this server never grants). Every response carries ``nosniff``, a CSP
that allows only the page's own inline script and style (by hash), ``frame-ancestors
'none'`` and ``Referrer-Policy: no-referrer``.

Bad requests get a 4xx with ``{"error": ...}``. Nothing a client sends reaches the frame
loop except through the scorer's ``set_roi`` and the features' own trigger methods, each
called with validated values; handler threads are daemons.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Optional
from urllib.parse import parse_qs, urlsplit

from device.common.jsonio import dumps, to_jsonable
from device.common.roi import check_roi
from device.errors import ConfigError, FocusAssistError
from device.loop.sink import Sink
from device.common.listen import check_token, parse_listen
from device.viewfinder.web.access import (COOKIE, HostPolicy, cookie_token, require_token,
                                          same_origin, token_ok)
from device.viewfinder.web import inspect_api
from device.viewfinder.web.stream import MjpegStream

if TYPE_CHECKING:
    from device.capture.sink import CaptureSink
    from device.lens.autofocus import Autofocus
    from device.scoring.classic import Scorer
    from device.sources.base import FrameSource
    from device.viewfinder.state import Viewfinder

log = logging.getLogger(__name__)

MAX_BODY = 4096
BOUNDARY = "focusassistframe"
PAGE = Path(__file__).with_name("index.html")
FOREIGN_FETCH_SITES = ("cross-site", "same-site")


def content_security_policy(page: bytes) -> str:
    """A CSP that fits ``page``: its inline ``<script>`` and ``<style>`` blocks by SHA-256,
    images and fetches from this server only, and no framing at all."""
    def hashes(tag: str) -> str:
        blocks = re.findall(rb"<%s>(.*?)</%s>" % (tag.encode(), tag.encode()), page, re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b).digest()).decode()}'"
                        for b in blocks) or "'none'"
    return (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
            "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def security_headers(page: bytes) -> dict:
    return {"X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": content_security_policy(page),
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cross-Origin-Resource-Policy": "same-origin"}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _Server(ThreadingHTTPServer):
    daemon_threads = True           # a stuck client never holds up shutdown
    allow_reuse_address = True
    request_queue_size = 16
    app: "WebViewfinder"

    def handle_error(self, request, client_address):  # quiet: clients vanish all the time
        log.debug("web: connection from %s ended with an error", client_address, exc_info=True)


def _server_for(host: str, port: int) -> _Server:
    cls = _Server
    if ":" in host:
        cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    return cls((host, port), _Handler)


class WebViewfinder(Sink):
    """A loop sink that serves the viewfinder over HTTP on its own threads.

    The features it can control are handed in: ``scorer`` (ROI selection), ``autofocus``
    and ``capture``; a missing one is reported as unavailable (404) and hidden on the page.
    """

    def __init__(self, listen: str, viewfinder: "Viewfinder", *, source: "Optional[FrameSource]" = None,
                 scorer: "Optional[Scorer]" = None, autofocus: "Optional[Autofocus]" = None,
                 capture: "Optional[CaptureSink]" = None,
                 token: Optional[str] = None, quality: int = 75, max_width: int = 1280,
                 allowed_hosts: tuple = ()):
        host, port = parse_listen(listen)
        require_token(host, token)
        check_token(token or None)      # $FOCUS_ASSIST_WEB_TOKEN skips the config's check
        self.viewfinder = viewfinder
        self.source = source
        self.scorer = scorer
        self.autofocus = autofocus
        self.capture = capture
        self.token = token or None
        try:
            self.server = _server_for(host, port)
        except OSError as exc:
            raise ConfigError(f"cannot serve the web viewfinder on {listen}: {exc.strerror or exc}") from None
        self.server.app = self
        self.stream = MjpegStream(viewfinder, quality, max_width)
        self.host, self.port = host, self.server.server_address[1]
        self.hosts = HostPolicy(host, self.port, tuple(allowed_hosts), socket.gethostname())
        self.page = PAGE.read_bytes()
        self.headers = security_headers(self.page)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="web-viewfinder", daemon=True)
        self._thread.start()
        log.info("web viewfinder on %s", self.url)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # --- sink -------------------------------------------------------------------------
    # frames reach the stream through the shared Viewfinder: no on_frame here

    def stats(self) -> dict:
        return {"web_clients": self.stream.clients, "web_frames_encoded": self.stream.encoded}

    def _close(self) -> None:
        self.stream.close()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=2.0)

    # --- features ---------------------------------------------------------------------
    def features(self) -> dict:
        _, result, _ = self.viewfinder.latest()
        return {
            "autofocus": self.autofocus is not None,
            "capture": self.capture is not None,
            "roi": self.scorer is not None,
            "cnn": result is not None and result.cnn is not None,
            "defects": result is not None and result.defects is not None,
            "heatmap_cnn": result is not None and result.cnn is not None
                           and result.cnn.tile_map is not None,
        }

    def status(self) -> dict:
        vf = self.viewfinder
        frame, result, _ = vf.latest()
        focus = {"value": result.focus if result else None, "peak": vf.peak.peak or None,
                 "measures": result.measures if result else None}
        if result is not None and result.cnn is not None:
            cnn = result.cnn
            focus.update(label=cnn.label, sharp_prob=cnn.sharp_prob, probs=cnn.probs,
                         blur_px=cnn.blur_px)
        out = {
            "source": self.source.info() if self.source is not None else None,
            "frames": vf.frames,
            "frame": result.frame if result else None,
            "fps": round(vf.fps, 2),
            "focus": focus,
            "roi": list(result.roi) if result and result.roi else None,
            "frame_size": [int(frame.grey.shape[1]), int(frame.grey.shape[0])] if frame is not None else None,
            "history": vf.history_points(),
            "overlay": dict(vf.toggles),
            "features": self.features(),
            "stream": {"clients": self.stream.clients, "fps": round(self.stream.fps, 2)},
        }
        if self.autofocus is not None:
            out["autofocus"] = self.autofocus.status()
        if self.capture is not None:
            out["capture"] = self.capture.status()
        if result is not None and result.defects is not None:
            out["defects"] = result.defects
        out["stars"] = vf.stars_status()
        return to_jsonable(out)

    # --- controls (called from handler threads with parsed JSON) -----------------------
    def control(self, path: str, body: dict) -> dict:
        vf = self.viewfinder
        if path == "/api/overlay":
            if not body:
                raise ApiError(400, "send at least one of: " + ", ".join(vf.toggles))
            try:
                toggles = vf.set_toggles(body)
            except KeyError as exc:
                raise ApiError(400, f"unknown overlay element {exc.args[0]!r} "
                                    f"(known: {', '.join(vf.toggles)})") from None
            except TypeError as exc:
                raise ApiError(400, str(exc)) from None
            return {"overlay": toggles}
        if path == "/api/peak/reset":
            _only(body, ())
            vf.reset_peak()
            return {"peak": None}
        if path == "/api/roi":
            return self._set_roi(body)
        if path == "/api/autofocus":
            _only(body, ())
            af = self._feature(self.autofocus, "autofocus")
            af.trigger("web")
            return {"autofocus": to_jsonable(af.status())}
        if path == "/api/capture":
            _only(body, ())
            cap = self._feature(self.capture, "capture")
            return {"capture": to_jsonable(cap.capture_now())}
        raise ApiError(404, f"no such control: {path}")

    @staticmethod
    def _feature(obj, name: str):
        if obj is None:
            raise ApiError(404, f"{name} is not available in this run")
        return obj

    def _set_roi(self, body: dict) -> dict:
        _only(body, ("roi",))
        if "roi" not in body:
            raise ApiError(400, 'send {"roi": [x, y, w, h]} in scored-frame pixels, or {"roi": null}')
        scorer = self._feature(self.scorer, "ROI selection")
        roi = body["roi"]
        if roi is not None:
            if (not isinstance(roi, list) or len(roi) != 4
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in roi)):
                raise ApiError(400, "roi must be four integers [x, y, w, h] or null")
            frame, _, _ = self.viewfinder.latest()
            if frame is None:
                raise ApiError(409, "no frame yet to check the ROI against")
            try:
                roi = check_roi(roi, frame.grey.shape)
            except FocusAssistError as exc:
                raise ApiError(422, str(exc)) from None
        scorer.set_roi(tuple(roi) if roi is not None else None)
        self.viewfinder.reset_peak()      # focus values of another region are not comparable
        return {"roi": list(roi) if roi is not None else None}


def _only(body: dict, allowed: tuple) -> None:
    extra = [k for k in body if k not in allowed]
    if extra:
        raise ApiError(400, f"unexpected field(s): {', '.join(map(str, extra[:5]))}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 10                   # a client that stops reading is dropped, not waited for
    server_version = "focus-assist"
    sys_version = ""

    def log_message(self, fmt, *args):  # the journal does not want one line per request
        log.debug("web %s: " + fmt, self.address_string(), *args)

    @property
    def app(self) -> WebViewfinder:
        return self.server.app

    # --- plumbing ---------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str, headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in {**self.app.headers, **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message, "status": status})

    def _query(self) -> tuple[str, dict]:
        # A literal '+' stays a '+' (tokens may hold one); nothing here takes spaces.
        url = urlsplit(self.path)
        return url.path, parse_qs(url.query.replace("+", "%2B"))

    def _check_host(self) -> None:
        host = self.headers.get("Host")
        if len(self.headers.get_all("Host") or ()) > 1 or not self.app.hosts.allows(host):
            self.close_connection = True
            raise ApiError(403, f"Host {host!r} is not allowed here: open the viewfinder by its "
                                "address, or add the name to [web] allowed_hosts")

    def _check_same_origin(self) -> None:
        """State changes only from our own page: JSON, no foreign Origin or fetch site."""
        origin = self.headers.get("Origin")
        if origin is not None and not same_origin(origin, self.headers.get("Host")):
            raise ApiError(403, f"cross-origin request from {origin!r} refused")
        site = (self.headers.get("Sec-Fetch-Site") or "").strip().lower()
        if site in FOREIGN_FETCH_SITES:
            raise ApiError(403, f"{site} request refused")
        if self.headers.get_content_type() != "application/json":
            raise ApiError(415, "send the request body as Content-Type: application/json")

    def _token_given(self, query: dict) -> Optional[str]:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:].strip()
        if "token" in query:
            return query["token"][0]
        return cookie_token(self.headers.get("Cookie"))

    def _authorised(self, query: dict) -> bool:
        return token_ok(self.app.token, self._token_given(query))

    def _guard(self, fn) -> None:
        try:
            self._check_host()
            if inspect_api.serve(self):      # GET/POST /api/inspect (issue 17)
                return
            fn()
        except ApiError as exc:
            self._safe_error(exc.status, exc.message)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # a handler bug is a 500, never a dead server
            log.exception("web: %s %s failed", self.command, self.path)
            self._safe_error(500, f"internal error: {exc.__class__.__name__}")

    def _safe_error(self, status: int, message: str) -> None:
        try:
            self._error(status, message)
        except OSError:
            self.close_connection = True

    # --- verbs ------------------------------------------------------------------------
    def do_GET(self):
        self._guard(self._get)

    def do_HEAD(self):
        self._guard(self._get)

    def do_POST(self):
        self._guard(self._post)

    def do_PUT(self):
        self._guard(self._not_allowed)

    do_DELETE = do_PATCH = do_PUT

    def _not_allowed(self):
        raise ApiError(405, f"{self.command} is not allowed here")

    def _get(self) -> None:
        path, query = self._query()
        if not self._authorised(query):
            raise ApiError(401, "missing or wrong token: open the page as /?token=...")
        if path == "/" and "token" in query and self.app.token:
            # Take the token from the URL once: a cookie carries it from now on. The cookie
            # is made from our own token, and only when the URL's token is that token.
            if not token_ok(self.app.token, query["token"][0]):
                raise ApiError(401, "wrong token in the address")
            cookie = f"{COOKIE}={self.app.token}; Path=/; HttpOnly; SameSite=Strict"
            self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})
            return
        if path in ("/", "/index.html"):
            self._send(200, self.app.page, "text/html; charset=utf-8")
        elif path == "/api/status":
            self._json(200, self.app.status())
        elif path == "/snapshot.jpg":
            jpeg = self.app.stream.snapshot()
            if jpeg is None:
                raise ApiError(503, "no frame yet")
            self._send(200, jpeg, "image/jpeg")
        elif path == "/stream.mjpg":
            self._stream()
        elif path.startswith("/api/") and path != "/api/status":
            raise ApiError(405, f"use POST for {path}")
        else:
            raise ApiError(404, f"not found: {path}")

    def _post(self) -> None:
        path, query = self._query()
        # Refused before the body is read: the connection cannot carry another request.
        self.close_connection = True
        if not self._authorised(query):
            raise ApiError(401, "missing or wrong token")
        if not path.startswith("/api/") or path == "/api/status":
            raise ApiError(405 if path in ("/", "/api/status", "/stream.mjpg", "/snapshot.jpg") else 404,
                           f"cannot POST to {path}")
        self._check_same_origin()
        self.close_connection = False
        body = self._read_json()
        self._json(200, self.app.control(path, body))

    def _read_json(self) -> dict:
        length = self.headers.get("Content-Length")
        if len(self.headers.get_all("Content-Length") or ()) > 1 or (
                length is not None and self.headers.get("Transfer-Encoding")):
            # Two framings of one body is how requests are smuggled past a proxy.
            self.close_connection = True
            raise ApiError(400, "send exactly one Content-Length and no Transfer-Encoding")
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise ApiError(411, "send a Content-Length")
            return {}
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "bad Content-Length") from None
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, f"request body over {MAX_BODY} bytes")
        raw = self.rfile.read(n) if n else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "body is not valid JSON") from None
        except RecursionError:      # a 4 KB body can nest deeper than json's stack allows
            raise ApiError(400, "body nests too deeply") from None
        if not isinstance(body, dict):
            raise ApiError(400, "body must be a JSON object")
        return body

    def _stream(self) -> None:
        stream = self.app.stream
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        for k, v in self.app.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        stream.add_client()
        try:
            seq = stream.seq        # wait for a fresh frame rather than send a stale one
            while not stream.stopped:
                seq, jpeg = stream.next_jpeg(seq, timeout=1.0)
                if jpeg is None:
                    continue
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                 f"Content-Length: {len(jpeg)}\r\n\r\n".encode())
                self.wfile.write(jpeg)
                self.wfile.write(b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            pass        # the client went away: only this thread notices
        finally:
            stream.remove_client()
