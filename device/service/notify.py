"""Talking to systemd: sd_notify readiness, watchdog pings and a one-line STATUS.

The protocol is one datagram per message to the AF_UNIX socket named by ``$NOTIFY_SOCKET``
(``READY=1``, ``WATCHDOG=1``, ``STATUS=...``, newline-separated). A few stdlib lines do it,
so the Pi needs no extra package. Outside systemd (no ``$NOTIFY_SOCKET``) every call is a
cheap no-op, so the same code path runs at a desk and under the service.

The watchdog is fed only from the frame loop (``ServiceNotifierSink.on_frame``): if the
camera hangs, frames stop, pings stop, and systemd restarts the service. Nothing else may
ping, or a hang would be hidden.
"""
from __future__ import annotations

import errno
import logging
import math
import os
import socket
import time
from typing import Any, Callable, Mapping, Optional

from device.loop.result import FrameResult
from device.loop.sink import Sink

log = logging.getLogger(__name__)


def _socket_address(name: str) -> Optional[str]:
    """``$NOTIFY_SOCKET`` -> an address ``socket.sendto`` accepts, or None if unusable.

    A leading ``@`` names a socket in the Linux abstract namespace, which Python spells with
    a leading NUL byte.
    """
    if name.startswith("@") and len(name) > 1:
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    # systemd 253+ also allows vsock: addresses (VMs); not reachable on a Pi service.
    return None


class Notifier:
    """Sends sd_notify messages; every method is a no-op when not started by systemd.

    Send errors are logged once and then counted, never raised: losing systemd's ear must
    not take the camera loop down with it.
    """

    def __init__(self, socket_name: Optional[str] = None, watchdog_usec: Optional[int] = None):
        self.socket_name = socket_name or None
        self._address = _socket_address(socket_name) if socket_name else None
        if socket_name and self._address is None:
            log.warning("ignoring NOTIFY_SOCKET=%r: not a path or @abstract name", socket_name)
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._sock: Optional[socket.socket] = None
        self.sent = 0
        self.errors = 0
        self._warned = False
        self._stopping_sent = False

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Notifier":
        """Read ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID``.

        ``WATCHDOG_PID`` names the process systemd expects pings from; if it is set to some
        other process (we were spawned by the real main process) the watchdog is not ours.
        """
        env = os.environ if environ is None else environ
        name = env.get("NOTIFY_SOCKET") or None
        usec: Optional[int] = None
        raw = env.get("WATCHDOG_USEC")
        if raw:
            try:
                usec = int(raw)
            except ValueError:
                log.warning("ignoring WATCHDOG_USEC=%r: not an integer", raw)
            pid = env.get("WATCHDOG_PID")
            if usec and pid and pid.strip() != str(os.getpid()):
                usec = None
        return cls(name, usec)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> Optional[float]:
        """The watchdog timeout in seconds, or None when no watchdog is armed."""
        if not self.enabled or self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 1e6

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` as one datagram; True if the kernel took it."""
        if self._address is None:
            return False
        data = "\n".join(fields).encode("utf-8", "replace")
        try:
            # A local reference: close() may run on the main thread while the frame loop
            # sends; the worst case is then an OSError on a closed socket, which is counted.
            sock = self._sock
            if sock is None:
                sock = self._sock = socket.socket(socket.AF_UNIX,
                                                  socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # MSG_DONTWAIT: if systemd's queue is full, drop this message rather than stall
            # the frame loop; the next ping or status follows within a second anyway.
            sock.sendto(data, socket.MSG_DONTWAIT, self._address)
        except OSError as exc:
            self.errors += 1
            if not self._warned:
                self._warned = True
                level = logging.DEBUG if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK) else logging.WARNING
                log.log(level, "sd_notify to %s failed: %s (further failures are only counted)",
                        self.socket_name, exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: Optional[str] = None) -> bool:
        """Tell systemd start-up is done (source open, models loaded)."""
        fields = ["READY=1"]
        if status:
            fields.append(f"STATUS={_one_line(status)}")
        return self.notify(*fields)

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def reloading(self) -> bool:
        """Before re-reading the config on SIGHUP; follow with ``ready()``."""
        return self.notify("RELOADING=1")

    def stopping(self, status: Optional[str] = None) -> bool:
        """Shutdown has begun. Sent at most once, so close paths may all call it."""
        if self._stopping_sent:
            return False
        self._stopping_sent = True
        fields = ["STOPPING=1"]
        if status:
            fields.append(f"STATUS={_one_line(status)}")
        return self.notify(*fields)

    def ping(self) -> bool:
        return self.notify("WATCHDOG=1")

    def watchdog(self, clock: Callable[[], float] = time.monotonic) -> Optional["Watchdog"]:
        """A ``Watchdog`` pinging at half the armed interval, or None if none is armed."""
        interval = self.watchdog_interval
        if interval is None:
            return None
        return Watchdog(self, interval, clock=clock)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "Notifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _one_line(text: str) -> str:
    # A newline would start a new KEY=VALUE field and could smuggle in READY=1 and friends.
    return " ".join(str(text).split())


class Watchdog:
    """Pings at half the watchdog interval, as sd_watchdog_enabled(3) recommends.

    ``maybe_ping(now)`` is called once per frame; it sends only when half an interval has
    passed since the last ping, so a 30 fps loop costs one datagram every few seconds.
    """

    def __init__(self, notifier: Notifier, interval_s: float,
                 clock: Callable[[], float] = time.monotonic):
        if interval_s <= 0:
            raise ValueError("watchdog interval must be > 0")
        self.notifier = notifier
        self.interval_s = float(interval_s)
        self.period_s = self.interval_s / 2.0
        self.clock = clock
        self.pings = 0
        self._last = -math.inf

    def maybe_ping(self, now: Optional[float] = None) -> bool:
        now = self.clock() if now is None else now
        if now - self._last < self.period_s:
            return False
        self._last = now
        self.pings += 1
        self.notifier.ping()
        return True


class ServiceNotifierSink(Sink):
    """A frame-loop sink that feeds systemd's watchdog and keeps STATUS= current.

    ``on_frame`` pings the watchdog (at half its interval) and, at most once per
    ``status_interval_s``, sends ``STATUS=<fps> fps, focus <f>, faults <n>``. The loop tells
    it about camera faults with ``on_fault(exc)``; faults never ping the watchdog, because
    only a delivered frame proves the camera is alive.
    """

    def __init__(self, notifier: Notifier, *, status_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.notifier = notifier
        self.clock = clock
        self.watchdog = notifier.watchdog(clock=clock)
        self.status_interval_s = float(status_interval_s)
        self.frames = 0
        self.faults = 0
        self.last_fault: Optional[str] = None
        self.fps = 0.0
        self.focus: Optional[float] = None
        self.verdict: Optional[tuple[str, float]] = None  # the CNN's (label, p_sharp)
        self.status_text = ""
        self.status_updates = 0
        self._window_start: Optional[float] = None
        self._window_frames = 0

    def on_frame(self, frame: Any, result: FrameResult) -> None:
        now = self.clock()
        self.frames += 1
        if self.watchdog is not None:
            self.watchdog.maybe_ping(now)
        if math.isfinite(result.focus):
            self.focus = float(result.focus)
        if result.label is not None:
            self.verdict = (result.label, float(result.sharp_prob))
        if self._window_start is None:
            self._window_start = now
            self._window_frames = 0
            return
        self._window_frames += 1
        elapsed = now - self._window_start
        if elapsed >= self.status_interval_s:
            self.fps = self._window_frames / elapsed
            self._window_start = now
            self._window_frames = 0
            self._send_status()

    def on_fault(self, error: str) -> None:
        """A camera fault (the source raised or gave nothing); reported at once."""
        self.faults += 1
        self.last_fault = error
        self._send_status()

    def format_status(self) -> str:
        focus = "-" if self.focus is None else f"{self.focus:.3g}"
        text = f"{self.fps:.1f} fps, focus {focus}"
        if self.verdict is not None:
            text += f", {self.verdict[0]} (p_sharp {self.verdict[1]:.2f})"
        text += f", faults {self.faults}"
        if self.faults and self.last_fault:
            text += f" (last: {self.last_fault})"
        return text

    def _send_status(self) -> None:
        self.status_text = self.format_status()
        self.status_updates += 1
        self.notifier.status(self.status_text)
        log.debug("status: %s", self.status_text)  # the same line in the journal, when asked

    def stats(self) -> dict:
        # Prefixed keys: the loop merges every sink's stats into one summary beside its own
        # frames/fps/faults, which these must not overwrite.
        return {
            "notify_watchdog_interval_s": None if self.watchdog is None else self.watchdog.interval_s,
            "notify_watchdog_pings": 0 if self.watchdog is None else self.watchdog.pings,
            "notify_status_updates": self.status_updates,
            "notify_status": self.status_text,
            "notify_sent": self.notifier.sent,
            "notify_errors": self.notifier.errors,
        }

    def _close(self) -> None:
        """Shutdown: STOPPING=1 (once) and release the socket."""
        self.notifier.stopping()
        self.notifier.close()
