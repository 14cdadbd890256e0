"""Where the web viewfinder listens and who may use it (pure functions, no sockets)."""
from __future__ import annotations

import hmac
import ipaddress
from typing import Optional

from device.errors import ConfigError

COOKIE = "fa_token"
TOKEN_ENV = "FOCUS_ASSIST_WEB_TOKEN"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8000`` for IPv6) -> (host, port); ConfigError if malformed."""
    t = str(text).strip()
    host, sep, port = t.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"web address must be HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        p = int(port)
    except ValueError:
        raise ConfigError(f"web address {text!r}: port must be a number") from None
    if not 0 <= p <= 65535:
        raise ConfigError(f"web address {text!r}: port must lie in 0..65535")
    if any(c.isspace() for c in host) or "/" in host:
        raise ConfigError(f"web address {text!r}: bad host")
    return host, p


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_token(host: str, token: Optional[str]) -> None:
    """Refuse to serve beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve the web viewfinder on {host} without a token: "
            f"pass --web-token, set web.token or ${TOKEN_ENV} (or listen on 127.0.0.1)")


def token_ok(expected: Optional[str], given: Optional[str]) -> bool:
    """Constant-time comparison; no expected token means open (loopback only)."""
    if not expected:
        return True
    if not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8", "replace"), given.encode("utf-8", "replace"))


def cookie_token(header: Optional[str]) -> Optional[str]:
    """Our token from a ``Cookie:`` header, if any."""
    if not header:
        return None
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None
