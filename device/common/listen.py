"""The web viewfinder's ``HOST:PORT``: parsed once, by the config and the server alike."""
from __future__ import annotations

from device.errors import ConfigError


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
