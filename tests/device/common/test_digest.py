"""device.common.digest: the same SHA-256 and comparison as hashlib/hmac, without libcrypto."""
import hashlib
import hmac
import subprocess
import sys

import cv2
import pytest

from tests.conftest import REPO, loaded_by_numpy_and_opencv
from device.common import digest


def _inputs(photo_bgr) -> list[bytes]:
    ok, jpeg = cv2.imencode(".jpg", photo_bgr)       # a real capture's bytes
    assert ok
    page = (REPO / "device" / "viewfinder" / "web" / "index.html").read_bytes()
    return [b"", b"abc", b"\x00" * 63, b"\xff" * 64, b"x" * 65, page, jpeg.tobytes()]


def test_sha256_equals_hashlibs_on_empty_short_block_edges_the_page_and_a_photo(photo_bgr):
    for data in _inputs(photo_bgr):
        assert digest.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
        assert digest.sha256(data).digest() == hashlib.sha256(data).digest()


def test_sha256_updated_in_chunks_equals_one_call(photo_bgr):
    data = _inputs(photo_bgr)[-1]
    h = digest.sha256()
    for i in range(0, len(data), 4096):
        h.update(data[i:i + 4096])
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()


def test_the_fallbacks_give_the_same_answers(monkeypatch, photo_bgr):
    monkeypatch.setattr(digest, "_builtin_sha256", None)
    monkeypatch.setattr(digest, "_compare_digest", None)
    for data in _inputs(photo_bgr):
        assert digest.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert digest.compare_digest(b"token", b"token") and not digest.compare_digest(b"token", b"tokeN")


@pytest.mark.parametrize("a,b", [(b"", b""), (b"secret", b"secret"), (b"secret", b"secreT"),
                                 (b"secret", b"secret2"), (b"", b"x"), ("é".encode(), "é".encode())])
def test_compare_digest_agrees_with_hmac(a, b):
    assert digest.compare_digest(a, b) is hmac.compare_digest(a, b)


def test_the_web_page_hashes_token_check_and_a_capture_never_load_libcrypto(tmp_path):
    """The CSP, the token check and a capture's sidecar checksum all run; OpenSSL's
    ``_hashlib`` (libcrypto, 3.3 MB of RSS) is never imported."""
    code = r"""
import json, sys
from pathlib import Path
from device.capture.sink import CaptureWriter
from device.viewfinder.web.access import token_ok
from device.viewfinder.web.server import PAGE, content_security_policy
csp = content_security_policy(PAGE.read_bytes())
assert "'sha256-" in csp, csp
assert token_ok("abc", "abc") and not token_ok("abc", "abd")
path = CaptureWriter(Path(sys.argv[1])).write(ext=".jpg", frame_index=1, sidecar={}, data=b"jpeg")
meta = json.loads(path.with_suffix(".json").read_text())
assert len(meta["sha256"]) == 64
print(" ".join(sorted(m for m in ("_hashlib", "hashlib", "hmac") if m in sys.modules)))
"""
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    # numpy 1.x (the Pi's apt numpy) loads all three itself, through numpy.random's
    # import of secrets: then there is nothing left for the device code to avoid.
    allowed = loaded_by_numpy_and_opencv(("_hashlib", "hashlib", "hmac"))
    assert set(p.stdout.split()) <= allowed, p.stdout
