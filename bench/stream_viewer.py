"""A browser tab on the web viewfinder's MJPEG stream, for the benchmarks.

Stays connected to ``/stream.mjpg`` and reads everything (so the encoder composes and
encodes every frame it can keep up with), reconnecting if the server drops it.
"""
from __future__ import annotations

import threading
import urllib.request
from typing import Optional


def viewer(port: int, stop: threading.Event, got: list,
           ready: Optional[threading.Event] = None) -> None:
    """Read the stream until ``stop``; ``got[0]`` counts the bytes. With ``ready``, wait
    for it first (at most a minute: a run that never gets ready still ends)."""
    if ready is not None:
        ready.wait(60)
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stream.mjpg", timeout=5) as r:
                while not stop.is_set():
                    chunk = r.read(1 << 16)
                    if not chunk:
                        break
                    got[0] += len(chunk)
        except Exception:
            stop.wait(0.2)
