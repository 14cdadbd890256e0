"""Logging to stderr that reads well both in a terminal and in the systemd journal.

Under systemd the journal already stamps every line with a time, the unit and the PID, so
printing our own timestamp would show it twice. Instead each line starts with a syslog
``<N>`` priority prefix, which journald turns into the entry's priority
(``journalctl -p warning`` then works). In a terminal the format is the usual timestamped
one.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import IO, Callable, Mapping, Optional

from device.errors import ConfigError

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# syslog(3) priorities, as sd-daemon(3) prefixes them.
_SYSLOG = [
    (logging.CRITICAL, 2),  # LOG_CRIT
    (logging.ERROR, 3),     # LOG_ERR
    (logging.WARNING, 4),   # LOG_WARNING
    (logging.INFO, 6),      # LOG_INFO
]
_LOG_DEBUG = 7

TERMINAL_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def syslog_priority(levelno: int) -> int:
    for threshold, prio in _SYSLOG:
        if levelno >= threshold:
            return prio
    return _LOG_DEBUG


class JournalFormatter(logging.Formatter):
    """``<N>logger: message``; no timestamp, and every line of a multi-line record
    (tracebacks) carries the prefix, since journald stores each line as its own entry."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def _stream_is_journal(stream: IO, journal_stream: str) -> bool:
    """``$JOURNAL_STREAM`` is ``DEV:INODE`` of the journal socket; it only applies if our
    stream is that very socket (a child whose stderr was redirected inherits the variable)."""
    try:
        dev, ino = (int(p) for p in journal_stream.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == dev and st.st_ino == ino


def under_journal(stream: Optional[IO] = None, environ: Optional[Mapping[str, str]] = None) -> bool:
    """True when ``stream`` (default stderr) goes to the journal, or we run as a systemd
    unit (``$INVOCATION_ID``) without a journal-stream hint to check against."""
    env = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    js = env.get("JOURNAL_STREAM")
    if js:
        return _stream_is_journal(stream, js)
    return bool(env.get("INVOCATION_ID"))


def setup_logging(level: str | int = "info", *, stream: Optional[IO] = None,
                  environ: Optional[Mapping[str, str]] = None) -> logging.Handler:
    """Configure the root logger with one stderr handler; safe to call again (SIGHUP).

    ``level`` is a name from ``LEVELS`` or a ``logging`` number; an unknown name is a
    ``ConfigError``. Returns the handler it installed.
    """
    if isinstance(level, str):
        try:
            levelno = LEVELS[level.lower()]
        except KeyError:
            raise ConfigError(
                f"unknown log level {level!r}; use one of {', '.join(LEVELS)}") from None
    else:
        levelno = int(level)
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    if under_journal(stream, environ):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(TERMINAL_FORMAT))
    handler._focus_assist = True  # type: ignore[attr-defined]  # ours to replace next time
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_focus_assist", False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)
    return handler


class Throttle:
    """Log a message that can repeat every frame at most once per ``interval_s``.

    Messages are told apart by their format string, so "frame 12 not saved" and "frame 13
    not saved" are one message. The first is logged at once; later ones inside the interval
    are counted, and the next one logged says how many were held back. ``clock`` is
    injectable (tests); calls may come from several threads.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.interval_s = float(interval_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict = {}          # format string -> (time logged, held back since)

    def log(self, level: int, msg: str, *args) -> bool:
        """Log now (True) or count it as held back (False)."""
        now = self._clock()
        with self._lock:
            logged, held = self._last.get(msg, (None, 0))
            if logged is not None and now - logged < self.interval_s:
                self._last[msg] = (logged, held + 1)
                return False
            self._last[msg] = (now, 0)
        if held:
            msg = msg + " (and %d more like it since the last one, not shown)"
            args = (*args, held)
        self.logger.log(level, msg, *args)
        return True

    def warning(self, msg: str, *args) -> bool:
        return self.log(logging.WARNING, msg, *args)

    def error(self, msg: str, *args) -> bool:
        return self.log(logging.ERROR, msg, *args)
