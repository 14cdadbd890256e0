"""The HTTP side of the web viewfinder: one ``BaseHTTPRequestHandler`` thread per
connection, doing only plumbing and the access rules; what a path means is
``server.WebViewfinder``'s route tables.

Every request must name an allowed ``Host`` (``access.HostPolicy``: DNS rebinding), and every
POST must be ``Content-Type: application/json`` from no foreign ``Origin`` or
``Sec-Fetch-Site`` (cross-site request forgery: a browser sends such a POST only after a CORS
preflight, which this server never grants). Every response carries the security headers
``server.security_headers`` made for the page.
"""
from __future__ import annotations

import json
import logging
import socket
import socketserver
import sys
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from device.common.jsonio import dumps
from device.viewfinder.web.access import COOKIE, cookie_token, same_origin, token_ok
from device.viewfinder.web.api import ApiError, Reply

log = logging.getLogger(__name__)


def _import_http_server():
    """``http.server`` without ``ssl``: its ``http.client`` imports ``ssl`` only to offer
    ``HTTPSConnection``, which a plain HTTP server never uses, and ``ssl`` costs 1.3 MB of
    RSS (4.3 with OpenSSL's libcrypto; docs/performance.md). A ``None`` in ``sys.modules``
    makes that import fail (the import system's documented rule), and ``http.client``
    catches it; the entry is removed at once, so a later ``import ssl`` works as usual.
    The cost: ``http.client`` in this process has no ``HTTPSConnection`` (nothing on the
    device makes HTTPS requests). When ``ssl`` or ``http.client`` is already loaded,
    nothing is hidden."""
    if "ssl" in sys.modules or "http.client" in sys.modules:
        import http.server
        return http.server
    sys.modules["ssl"] = None
    try:
        import http.server
    finally:
        if sys.modules.get("ssl", 0) is None:
            del sys.modules["ssl"]
    return http.server


_http = _import_http_server()
BaseHTTPRequestHandler, ThreadingHTTPServer = _http.BaseHTTPRequestHandler, _http.ThreadingHTTPServer

MAX_BODY = 4096
BOUNDARY = "focusassistframe"
FOREIGN_FETCH_SITES = ("cross-site", "same-site")
FILE_CHUNK = 1 << 16


class _Server(ThreadingHTTPServer):
    daemon_threads = True           # a stuck client never holds up shutdown
    allow_reuse_address = True
    request_queue_size = 16
    app = None        # the server.WebViewfinder it serves (not imported: no cycle)

    def server_bind(self):
        # HTTPServer's own calls socket.getfqdn: a reverse DNS lookup (slow on a Pi with
        # no DNS, and it loads the idna codec) for a name nothing here uses.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):  # quiet: clients vanish all the time
        log.debug("web: connection from %s ended with an error", client_address, exc_info=True)


def server_for(host: str, port: int) -> _Server:
    cls = _Server
    if ":" in host:
        cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    return cls((host, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 10                   # a client that stops reading is dropped, not waited for
    server_version = "focus-assist"
    sys_version = ""

    def log_message(self, fmt, *args):  # the journal does not want one line per request
        log.debug("web %s: " + fmt, self.address_string(), *args)

    @property
    def app(self):
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

    def _error(self, status: int, message: str, extra: Optional[dict] = None) -> None:
        self._json(status, {"error": message, "status": status, **(extra or {})})

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
            fn()
        except ApiError as exc:
            self._safe_error(exc.status, exc.message, exc.extra)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # a handler bug is a 500, never a dead server
            log.exception("web: %s %s failed", self.command, self.path)
            self._safe_error(500, f"internal error: {exc.__class__.__name__}")

    def _safe_error(self, status: int, message: str, extra: Optional[dict] = None) -> None:
        try:
            self._error(status, message, extra)
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
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self._answer(self.app.get(path, query))

    def _post(self) -> None:
        path, query = self._query()
        # Refused before the body is read: the connection cannot carry another request.
        self.close_connection = True
        if not self._authorised(query):
            raise ApiError(401, "missing or wrong token")
        self.app.check_post(path)
        self._check_same_origin()
        self.close_connection = False
        body = self._read_json()
        self._answer(self.app.post(path, body))

    def _answer(self, out) -> None:
        if not isinstance(out, Reply):
            self._json(200, out)
            return
        if out.file is None:
            self._send(out.status, out.body, out.ctype, out.headers)
            return
        try:
            self.send_response(out.status)
            self.send_header("Content-Type", out.ctype)
            self.send_header("Content-Length", str(out.length))
            self.send_header("Cache-Control", "no-store")
            for k, v in {**self.app.headers, **out.headers}.items():
                self.send_header(k, v)
            self.end_headers()
            left = out.length
            while left > 0 and self.command != "HEAD":   # exactly the promised length
                chunk = out.file.read(min(FILE_CHUNK, left))
                if not chunk:
                    self.close_connection = True
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
        finally:
            out.file.close()

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
