"""Where the web viewfinder listens and who may use it (pure functions, no sockets)."""
from __future__ import annotations

import ipaddress
from typing import Optional

from device.common.digest import compare_digest
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
    return compare_digest(expected.encode("utf-8", "replace"), given.encode("utf-8", "replace"))


def cookie_token(header: Optional[str]) -> Optional[str]:
    """Our token from a ``Cookie:`` header, if any."""
    if not header:
        return None
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def split_host(value: str) -> Optional[tuple[str, Optional[int]]]:
    """``Host``/``Origin`` authority -> (lower-case name without brackets, port or None);
    None when it cannot be a host at all."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@ \t\\"):
        return None
    port: Optional[int] = None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
        if rest:
            if not rest.startswith(":"):
                return None
            rest = rest[1:]
    else:
        name, sep, rest = value.partition(":")
        if not sep:
            rest = ""
    if rest:
        if not rest.isdigit() or not 0 < int(rest) < 65536:
            return None
        port = int(rest)
    name = name.rstrip(".")
    return (name, port) if name else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


class HostPolicy:
    """Which ``Host:`` names the server answers (the guard against DNS rebinding).

    A rebinding page reaches us under its own DNS name, so names are what must be listed:
    the bound address, ``localhost`` (and the loopback literals when bound to loopback),
    this machine's host name when bound to every interface, and ``[web] allowed_hosts``.
    An IP literal is only a rebinding risk if it is not ours: it must be the bound address,
    or any address when bound to every interface. ``"*"`` in ``allowed_hosts`` turns the
    check off (behind a reverse proxy that checks it itself).
    """

    def __init__(self, bound: str, port: int, allowed: tuple = (), hostname: Optional[str] = None):
        self.port = port
        self.any = "*" in allowed
        self.wildcard = _is_wildcard(bound)
        names = {n.strip().lower().rstrip(".") for n in allowed if n != "*"}
        names.add("localhost")
        if not self.wildcard:
            names.add(bound.lower())
        if is_loopback(bound):
            names.update(("127.0.0.1", "::1"))
        if self.wildcard and hostname:
            h = hostname.lower()
            names.update((h, h + ".local"))
        self.names = frozenset(names)

    def allows(self, header: Optional[str]) -> bool:
        if self.any:
            return True
        if not header:
            return False
        parsed = split_host(header)
        if parsed is None:
            return False
        name, _ = parsed
        if name in self.names:
            return True
        return self.wildcard and _is_ip(name)


def same_origin(origin: str, host_header: Optional[str]) -> bool:
    """True when an ``Origin:`` names the very scheme-less authority the request was sent to."""
    scheme, sep, authority = origin.strip().lower().partition("://")
    if not sep or scheme != "http" or not host_header:
        return False
    o, h = split_host(authority), split_host(host_header)
    if o is None or h is None:
        return False
    return o[0] == h[0] and (o[1] or 80) == (h[1] or 80)
