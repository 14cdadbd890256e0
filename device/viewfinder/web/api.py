"""What every route module of the web viewfinder shares: the error a route raises, the
reply a route may return instead of JSON, and the check of a body's fields.

A route is a function of the parsed request (query for GET, JSON body for POST) that
returns a JSON-ready value (sent as 200 JSON) or a ``Reply``, or raises ``ApiError``;
``server.WebViewfinder`` maps paths to routes, ``handler`` does the HTTP.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Optional


class ApiError(Exception):
    """A 4xx answer ``{"error": message, "status": status, **extra}``."""
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


@dataclass(frozen=True)
class Reply:
    """A non-JSON answer: ``body`` bytes, or an open binary ``file`` of ``length`` bytes
    streamed in chunks (and closed by the handler), so a large DNG never sits in memory."""
    ctype: str
    body: bytes = b""
    file: Optional[BinaryIO] = None
    length: int = 0
    headers: dict = field(default_factory=dict)
    status: int = 200


def only(body: dict, allowed: tuple) -> None:
    extra = [k for k in body if k not in allowed]
    if extra:
        raise ApiError(400, f"unexpected field(s): {', '.join(map(str, extra[:5]))}")


def feature(obj, name: str):
    if obj is None:
        raise ApiError(404, f"{name} is not available in this run")
    return obj


def integer(body: dict, key: str, what: str = "a whole number") -> int:
    if key not in body:
        raise ApiError(400, f"send {key}: {what}")
    v = body[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ApiError(400, f"{key} must be {what}, got {v!r}")
    return v
