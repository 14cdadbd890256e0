"""The web viewfinder: a loop sink that serves the page, the MJPEG stream, the status and
the controls, and the one table of what each path means.

Routes (all behind the token when one is set; ``docs/viewfinder.md`` has the full API):

* ``GET /`` (the page; ``/?token=T`` sets a cookie and redirects to ``/``),
  ``/stream.mjpg``, ``/snapshot.jpg``, ``/api/status``, ``/api/captures``,
  ``/captures/NAME`` (``?thumb=1``: its thumbnail), ``/api/inspect``;
* ``POST /api/overlay``, ``/api/peak/reset``, ``/api/roi``, ``/api/autofocus``,
  ``/api/capture``, ``/api/motor``, ``/api/defects/known``, ``/api/inspect``.

A route is a function of the query (GET) or of the parsed JSON body (POST) returning JSON
or an ``api.Reply``; a feature's routes live in its own module (``motor_api``,
``gallery``, ``defects_api``, ``inspect_api``) and are listed in ``_routes``. HTTP and the access rules
(``Host``, token, ``Origin``, body framing) are ``handler``'s. Nothing a client sends
reaches the frame loop except through the scorer's ``set_roi``, the features' own
trigger methods and the motor desk's queue, each with validated values.
"""
from __future__ import annotations

import base64
import logging
import re
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from device.common.digest import sha256
from device.common.jsonio import to_jsonable
from device.common.listen import check_token, parse_listen
from device.common.roi import check_roi
from device.errors import ConfigError, FocusAssistError
from device.loop.sink import Sink
from device.viewfinder.web import defects_api, inspect_api
from device.viewfinder.web.access import HostPolicy, require_token
from device.viewfinder.web.api import ApiError, Reply, feature, only
from device.viewfinder.web.gallery import Gallery
from device.viewfinder.web.handler import BOUNDARY, MAX_BODY
from device.viewfinder.web.handler import server_for as _server_for
from device.viewfinder.web.motor_api import MotorDesk
from device.viewfinder.web.stream import MjpegStream

if TYPE_CHECKING:
    from device.capture.sink import CaptureSink
    from device.defects.live import DefectMapSink
    from device.lens.autofocus import Autofocus
    from device.lens.motor import Motor
    from device.scoring.classic import Scorer
    from device.sources.base import FrameSource
    from device.viewfinder.state import Viewfinder

__all__ = ["BOUNDARY", "MAX_BODY", "PAGE", "ApiError", "WebViewfinder", "content_security_policy",
           "security_headers"]

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("index.html")
CAPTURES = "/captures/"


def content_security_policy(page: bytes) -> str:
    """A CSP that fits ``page``: its inline ``<script>`` and ``<style>`` blocks by SHA-256,
    images and fetches from this server only, and no framing at all."""
    def hashes(tag: str) -> str:
        blocks = re.findall(rb"<%s>(.*?)</%s>" % (tag.encode(), tag.encode()), page, re.S)
        return " ".join(f"'sha256-{base64.b64encode(sha256(b).digest()).decode()}'"
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


class WebViewfinder(Sink):
    """A loop sink that serves the viewfinder over HTTP on its own threads.

    The features it can control are handed in: ``scorer`` (ROI selection), ``autofocus``,
    ``capture`` (and its folder, the gallery), ``motor`` (``motor_busy()`` names what else
    drives it, e.g. a bracket), ``defects`` (the live defect map); a missing one is
    reported as unavailable (404) and hidden on the page.
    """

    def __init__(self, listen: str, viewfinder: "Viewfinder", *, source: "Optional[FrameSource]" = None,
                 scorer: "Optional[Scorer]" = None, autofocus: "Optional[Autofocus]" = None,
                 capture: "Optional[CaptureSink]" = None, motor: "Optional[Motor]" = None,
                 motor_busy: Optional[Callable[[], Optional[str]]] = None,
                 defects: "Optional[DefectMapSink]" = None,
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
        self.defects = defects
        self.motor = None
        if motor is not None:
            steps = autofocus.search_steps()[::-1] if autofocus is not None else None
            self.motor = MotorDesk(motor, autofocus=autofocus, steps=steps, busy=motor_busy)
        self.gallery = Gallery(capture.dir) if capture is not None else None
        self.token = token or None
        self.gets, self.posts = self._routes()
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

    def _routes(self) -> tuple[dict, dict]:
        """path -> route. GET routes take the query, POST routes the JSON body."""
        gets = {
            "/api/status": lambda q: self.status(),
            "/snapshot.jpg": lambda q: self._snapshot(),
            "/api/captures": lambda q: feature(self.gallery, "the capture gallery").listing(),
            inspect_api.PATH: lambda q: inspect_api.last(self.viewfinder.inspector),
        }
        posts = {
            "/api/overlay": self._overlay,
            "/api/peak/reset": self._peak_reset,
            "/api/roi": self._set_roi,
            "/api/autofocus": self._autofocus,
            "/api/capture": self._capture,
            "/api/motor": lambda b: feature(self.motor, "a focus motor").command(b),
            "/api/defects/known": lambda b: defects_api.mark_known(
                feature(self.defects, "the live defect map"), b),
            inspect_api.PATH: lambda b: inspect_api.analyse(self.viewfinder.inspector, b),
        }
        return gets, posts

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # --- dispatch (handler threads) ---------------------------------------------------
    def get(self, path: str, query: dict):
        if path in self.gets:
            return self.gets[path](query)
        if path.startswith(CAPTURES):
            g = feature(self.gallery, "the capture gallery")
            name = path[len(CAPTURES):]
            thumb = query.get("thumb", [""])[0] not in ("", "0")
            return g.thumbnail(name) if thumb else g.download(name)
        if path in self.posts:
            raise ApiError(405, f"use POST for {path}")
        raise ApiError(404, f"not found: {path}")

    def check_post(self, path: str) -> None:
        """Before the body is read: a path that takes no POST is refused at once."""
        if path in self.posts:
            return
        if path in self.gets or path in ("/", "/index.html", "/stream.mjpg") or path.startswith(CAPTURES):
            raise ApiError(405, f"cannot POST to {path}")
        raise ApiError(404, f"no such control: {path}")

    def post(self, path: str, body: dict):
        return self.posts[path](body)

    # --- sink -------------------------------------------------------------------------
    # frames reach the stream through the shared Viewfinder; on the loop thread only the
    # queued motor move is started
    def on_frame(self, frame, result) -> None:
        if self.motor is not None:
            self.motor.apply()

    def stats(self) -> dict:
        return {"web_clients": self.stream.clients, "web_frames_encoded": self.stream.encoded}

    def _close(self) -> None:
        self.stream.close()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=2.0)

    # --- status -----------------------------------------------------------------------
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
            "motor": self.motor is not None,
            "gallery": self.gallery is not None,
        }

    def status(self) -> dict:
        vf = self.viewfinder
        frame, result, _ = vf.latest()
        focus = {"value": result.focus if result else None, "peak": vf.peak.peak or None,
                 "measures": result.measures if result else None}
        if result is not None and result.cnn is not None:
            cnn = result.cnn
            focus.update(label=result.label, sharp_prob=result.sharp_prob, probs=cnn.probs,
                         blur_px=cnn.blur_px, net_label=cnn.label, net_sharp_prob=cnn.sharp_prob,
                         verdict_by=result.verdict.decided_by if result.verdict else "net")
        out = {
            "source": self.source.info() if self.source is not None else None,
            "frames": vf.frames,
            "frame": result.frame if result else None,
            "fps": round(vf.fps, 2),
            "focus": focus,
            "roi": list(result.roi) if result and result.roi else None,
            "frame_size": [int(frame.grey.shape[1]), int(frame.grey.shape[0])] if frame is not None else None,
            # the picture the stream shows and defect positions are in (the Pi's main stream)
            "display_size": _size(frame.color if frame.color is not None else frame.grey)
                            if frame is not None else None,
            "history": vf.history_points(),
            "overlay": dict(vf.toggles),
            "features": self.features(),
            "stream": {"clients": self.stream.clients, "fps": round(self.stream.fps, 2)},
            "motor": self.motor.status() if self.motor is not None else None,
        }
        if self.autofocus is not None:
            out["autofocus"] = self.autofocus.status()
        if self.capture is not None:
            out["capture"] = self.capture.status()
        if result is not None and result.defects is not None:
            out["defects"] = result.defects
        out["stars"] = vf.stars_status()
        return to_jsonable(out)

    # --- the controls (handler threads, parsed JSON) ------------------------------------
    def _snapshot(self) -> Reply:
        jpeg = self.stream.snapshot()
        if jpeg is None:
            raise ApiError(503, "no frame yet")
        return Reply("image/jpeg", body=jpeg)

    def _overlay(self, body: dict) -> dict:
        vf = self.viewfinder
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

    def _peak_reset(self, body: dict) -> dict:
        only(body, ())
        self.viewfinder.reset_peak()
        return {"peak": None}

    def _autofocus(self, body: dict) -> dict:
        only(body, ())
        af = feature(self.autofocus, "autofocus")
        af.trigger("web")
        return {"autofocus": to_jsonable(af.status())}

    def _capture(self, body: dict) -> dict:
        only(body, ())
        cap = feature(self.capture, "capture")
        return {"capture": to_jsonable(cap.capture_now())}

    def _set_roi(self, body: dict) -> dict:
        only(body, ("roi",))
        if "roi" not in body:
            raise ApiError(400, 'send {"roi": [x, y, w, h]} in scored-frame pixels, or {"roi": null}')
        scorer = feature(self.scorer, "ROI selection")
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


def _size(img) -> list:
    return [int(img.shape[1]), int(img.shape[0])]
