"""A live loop on the simulated camera with the web viewfinder, for the web tests.

Binds 127.0.0.1 on an ephemeral port; every request has a timeout; ``stop()`` ends the
loop thread and the server.
"""
from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Optional

from device.capture.sink import CaptureSink
from device.defects.live import DefectMapSink
from device.defects.persistence import DefectMap
from device.config import AutofocusConfig, CaptureConfig, MotorConfig, OverlayConfig, ServiceConfig, SimConfig
from device.lens.autofocus import Autofocus
from device.lens.motor import open_motor
from device.loop.frame_loop import Loop
from device.scoring.classic import ClassicScorer
from device.sources.sim import SimCamera
from device.viewfinder.state import Viewfinder
from device.viewfinder.web.server import WebViewfinder

TIMEOUT = 5.0


class LiveViewfinder:
    """``features_dir`` (a folder) adds the real capture feature, saving there, and the
    real autofocus on the simulated lens's motor (``motor``, also under the web's motor
    controls); ``cnn`` scores with the shipped focus net; ``defect_map`` (a file) adds the
    live defect map resumed from it (analysing one frame in ``defect_every``)."""

    def __init__(self, *, token: Optional[str] = None, features_dir=None, cnn: bool = False,
                 fps: float = 30.0, scene: str = "mosaic", overlay: OverlayConfig = OverlayConfig(),
                 defect_map=None, defect_every: int = 100_000,
                 stars: Optional[str] = None, inspect=None):
        """``stars`` ("hfr" or "fwhm") turns star mode on (a ``StarMonitor`` sink);
        ``inspect`` (an ``InspectConfig``) adds the live optics inspector."""
        self.source = SimCamera(SimConfig(scene=scene, fps=fps, seed=2))
        self.scorer = ClassicScorer()
        if cnn:
            from device.config import load_config
            from device.scoring.focus_net import scorer_from_config

            self.scorer = scorer_from_config(load_config(overrides={"models": {"num_threads": 1}}),
                                             self.scorer)
        self.autofocus = self.capture = self.motor = self.defects = None
        features: list = []
        if defect_map is not None:
            self.defects = DefectMapSink(DefectMap(), every_n=defect_every, map_file=defect_map)
            features.append(self.defects)
        if features_dir is not None:
            self.motor = motor = open_motor(MotorConfig(driver="sim"), sim_camera=self.source)
            self.autofocus = Autofocus(motor, AutofocusConfig(), owns_motor=True)
            self.capture = CaptureSink(CaptureConfig(), features_dir, source_name=self.source.name,
                                       lens_position=lambda: self.source.lens_position)
            features += [self.capture, self.autofocus]
        self.stars = None
        if stars:
            from device.scoring.stars_live import StarMonitor

            self.stars = StarMonitor(stars, lens_position=lambda: self.source.exposed_position)
            features.append(self.stars)
        self.inspector = None
        if inspect is not None:
            from device.optics.live import LiveInspector

            self.inspector = LiveInspector(inspect, autofocus=self.autofocus,
                                           lens_position=lambda: self.source.exposed_position)
            features.append(self.inspector)
        self.viewfinder = Viewfinder(overlay, 10.0, autofocus=self.autofocus, capture=self.capture,
                                     stars=self.stars, inspector=self.inspector)
        self.web = WebViewfinder("127.0.0.1:0", self.viewfinder, source=self.source,
                                 scorer=self.scorer, autofocus=self.autofocus,
                                 capture=self.capture, motor=self.motor,
                                 defects=self.defects, token=token)
        self.loop = Loop(self.source, self.scorer, [*features, self.viewfinder, self.web],
                         faults=ServiceConfig())
        self._thread = threading.Thread(target=self.loop.run, name="test-loop", daemon=True)
        self._thread.start()
        self.port = self.web.port

    def wait_frames(self, n: int, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while self.loop.stats.frames < n:
            if time.monotonic() > end:
                raise AssertionError(f"only {self.loop.stats.frames} frames in {timeout} s")
            time.sleep(0.02)

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def request(self, method: str, path: str, body=None, headers: Optional[dict] = None):
        """(status, headers, parsed JSON or raw bytes)."""
        c = self.conn()
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            h = dict(headers or {})
            if data is not None and "Content-Type" not in h:
                h["Content-Type"] = "application/json"
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            raw = r.read()
            ctype = r.getheader("Content-Type", "")
            payload = json.loads(raw) if ctype.startswith("application/json") else raw
            return r.status, dict(r.getheaders()), payload
        finally:
            c.close()

    def stop(self) -> None:
        self.loop.stop()
        self._thread.join(timeout=5.0)
        self.loop.close()
