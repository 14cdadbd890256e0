"""SHA-256 and a constant-time comparison without OpenSSL's libcrypto.

``hashlib`` and ``hmac`` import ``_hashlib``, which maps OpenSSL's libcrypto: 3.3 MB of
resident memory in a run here (``bench/bench_memory.py``, docs/performance.md) for two
small jobs, the web page's CSP hashes and the capture sidecar's checksum, plus the web
token's comparison. CPython ships its own SHA-256 (``_sha256`` up to 3.11, ``_sha2`` from
3.12) and ``_operator._compare_digest`` (what ``hmac.compare_digest`` is without OpenSSL);
this module uses those, and ``hashlib`` / ``hmac`` only on a Python built without them.
The digests are the same bytes either way. (numpy 1.x, the Pi's apt numpy, imports
``secrets`` from ``numpy.random`` and so loads libcrypto by itself; numpy 2 does not.)
"""
from __future__ import annotations

try:                                    # CPython 3.12+
    from _sha2 import sha256 as _builtin_sha256
except ImportError:
    try:                                # CPython 3.11 and older
        from _sha256 import sha256 as _builtin_sha256
    except ImportError:                 # a build without the builtin hashes
        _builtin_sha256 = None

try:
    from _operator import _compare_digest
except ImportError:                     # not CPython
    _compare_digest = None


def sha256(data: bytes = b""):
    """A SHA-256 hash object (``update``, ``digest``, ``hexdigest``), like ``hashlib.sha256``."""
    if _builtin_sha256 is not None:
        return _builtin_sha256(data)
    import hashlib

    return hashlib.sha256(data)


def compare_digest(a: bytes, b: bytes) -> bool:
    """``a == b`` in time that does not depend on where they differ (``hmac.compare_digest``)."""
    if _compare_digest is not None:
        return _compare_digest(a, b)
    import hmac

    return hmac.compare_digest(a, b)
