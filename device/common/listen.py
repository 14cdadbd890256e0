"""The web viewfinder's ``HOST:PORT`` and token rules: checked once, by the config and the server alike."""
from __future__ import annotations

from typing import Optional

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


# RFC 6265's cookie-octet: the token travels as a cookie value, and anything outside this
# set (space, ';', ',', '"', '\\', controls, non-ASCII) is either cut there or refused.
_TOKEN_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - set('",;\\')
MIN_TOKEN_LEN = 8


def check_token(token: Optional[str], what: str = "the web token") -> None:
    """A token must survive the round trip URL -> cookie -> header: ConfigError if not."""
    if token is None:
        return
    bad = sorted({c for c in token if c not in _TOKEN_CHARS})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise ConfigError(f"{what} contains {shown}: use printable ASCII without spaces, "
                          f"quotes, commas, semicolons or backslashes (it is sent as a cookie)")
    if len(token) < MIN_TOKEN_LEN:
        raise ConfigError(f"{what} must be at least {MIN_TOKEN_LEN} characters")
