"""Frame sources, picked by a spec string.

``sim[:k=v,...]``, ``video:PATH``, ``images:GLOB``, ``picamera2``, or ``auto`` (picamera2
when it imports and a camera is attached, otherwise ``sim``).
"""
from __future__ import annotations

import logging

from device.config import Config
from device.errors import InputError
from device.sources.base import Frame, FrameSource

log = logging.getLogger(__name__)

SPEC_HELP = "auto, sim[:key=value,...], video:PATH, images:GLOB or picamera2"

__all__ = ["Frame", "FrameSource", "open_source", "SPEC_HELP"]


def _options(text: str) -> dict:
    opts = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise InputError(f"source option {part!r} is not key=value")
        k, v = part.split("=", 1)
        opts[k.strip()] = v.strip()
    return opts


def open_source(spec: str, cfg: Config = Config()) -> FrameSource:
    """Open the source ``spec`` names; InputError (one clear line) if it cannot."""
    kind, _, rest = spec.partition(":")
    if kind == "auto" and not rest:
        from device.sources.picam import camera_available

        ok, why = camera_available()
        if ok:
            log.info("source auto: %s -> picamera2", why)
            return open_source("picamera2", cfg)
        log.info("source auto: %s -> built-in simulated camera (sim)", why)
        return open_source("sim", cfg)
    if kind == "sim":
        from device.sources.sim import open_sim

        return open_sim(_options(rest), cfg.sim)
    if kind == "video":
        if not rest:
            raise InputError("video: needs a path, device or URL, e.g. video:clip.mp4")
        from device.sources.files import VideoSource

        return VideoSource(rest, timeout_s=cfg.source.timeout_s,
                           backoff_s=cfg.service.retry_backoff_s,
                           backoff_max_s=cfg.service.retry_backoff_max_s)
    if kind == "images":
        if not rest:
            raise InputError("images: needs a glob, e.g. images:'sweep/*.jpg'")
        from device.sources.files import ImageSource

        return ImageSource(rest, max_pixels=cfg.input.max_image_pixels)
    if kind == "picamera2" and not rest:
        from device.sources.picam import Picamera2Source, camera_available

        ok, why = camera_available()
        if not ok:
            raise InputError(f"source picamera2: {why}")
        return Picamera2Source(cfg.picamera2)
    raise InputError(f"bad source spec {spec!r}: expected {SPEC_HELP}")
