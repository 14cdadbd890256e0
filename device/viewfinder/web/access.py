"""Where the web viewfinder listens and who may use it (pure functions, no sockets)."""
from __future__ import annotations

import hmac
import ipaddress
from typing import Optional

from device.errors import ConfigError

COOKIE = "fa_token"
TOKEN_ENV = "FOCUS_ASSIST_WEB_TOKEN"


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
