"""The sink contract: what the frame loop may call on every per-frame consumer.

A sink overrides ``on_frame`` and whichever hooks it needs; the loop and the runner call
all of them on every sink, so none has to be probed for. ``close`` is idempotent and a
sink is a context manager (a motor is de-energised however the block is left).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from device.config import Config
    from device.loop.result import FrameResult
    from device.sources.base import Frame

log = logging.getLogger(__name__)


class Closeable:
    """Idempotent ``close`` (subclasses implement ``_close``) and ``with`` support."""
    _closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close()

    def _close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


class Sink(Closeable):
    """One per-frame consumer of the loop. Every hook is a no-op unless overridden."""

    def on_frame(self, frame: "Frame", result: "FrameResult") -> None:
        pass

    def on_fault(self, error: str) -> None:
        """The camera faulted (no frame this time); ``error`` says how."""

    def stats(self) -> dict:
        """Counters merged into ``run --stats``' summary (keys namespaced by the sink)."""
        return {}

    def reconfigure(self, cfg: "Config") -> None:
        """SIGHUP with a valid new config: apply what can change live."""


def close_all(sinks) -> None:
    """Close ``sinks`` last-built first; one failing does not stop the others."""
    for sink in reversed(list(sinks)):
        try:
            sink.close()
        except Exception:
            log.exception("closing %s failed", sink.__class__.__name__)
