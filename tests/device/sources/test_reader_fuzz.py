"""Property-based fuzz of the image reader (issue 19): crafted PNG/JPEG/TIFF headers and
damaged real files give an image within the pixel limit or one InputError, never another
exception, and nothing from a native decoder on stderr."""
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from device.errors import InputError
from device.sources.files import read_image

LIMIT = 1 << 20    # small, so that a header under the limit decodes quickly
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A real photo (scikit-image's astronaut, 128x128) encoded as PNG, JPEG and TIFF."""
    data = pytest.importorskip("skimage.data")
    img = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (128, 128))
    return {ext: cv2.imencode(ext, img)[1].tobytes() for ext in (".png", ".jpg", ".tif")}


def _check(tmp_path, capfd, blob: bytes) -> None:
    p = tmp_path / "x.img"
    p.write_bytes(blob)
    capfd.readouterr()
    try:
        img = read_image(p, max_pixels=LIMIT)
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert img.dtype in (np.uint8, np.uint16) and img.shape[0] * img.shape[1] <= LIMIT
    out = capfd.readouterr()
    assert out.err == "" and out.out == "", out


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@FUZZ
@given(w=st.integers(0, 2 ** 32 - 1), h=st.integers(0, 2 ** 32 - 1),
       depth=st.sampled_from([1, 2, 4, 8, 16, 3, 0]), colour=st.sampled_from([0, 2, 3, 4, 6, 1]),
       idat=st.binary(max_size=200), compressed=st.booleans())
def test_crafted_png_headers(tmp_path, capfd, w, h, depth, colour, idat, compressed):
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    body = zlib.compress(idat) if compressed else idat
    _check(tmp_path, capfd, b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body)
           + _chunk(b"IEND", b""))


@FUZZ
@given(w=st.integers(0, 65535), h=st.integers(0, 65535), cut=st.floats(0.05, 1.0))
def test_crafted_jpeg_frame_headers_and_truncation(tmp_path, capfd, photos, w, h, cut):
    b = bytearray(photos[".jpg"])
    i = b.find(b"\xff\xc0")
    b[i + 5:i + 9] = struct.pack(">HH", h, w)
    _check(tmp_path, capfd, bytes(b[:max(4, int(len(b) * cut))]))


@FUZZ
@given(ext=st.sampled_from([".png", ".jpg", ".tif"]),
       flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.floats(0.02, 1.0))
def test_damaged_headers_of_real_files(tmp_path, capfd, photos, ext, flips, cut):
    b = bytearray(photos[ext])
    for pos, val in flips:       # the header and the first IFD / segments live up front
        b[pos % len(b)] = val
    _check(tmp_path, capfd, bytes(b[:max(8, int(len(b) * cut))]))
