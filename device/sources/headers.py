"""The width and height an image file's header claims, read before anything is decoded.

A decoder allocates what the header says: a 69-byte PNG can claim 40000x40000 and a
2.6 MB valid one takes 5.3 GB to decode. ``claimed_size`` reads only the header fields
(PNG IHDR, JPEG SOFn, TIFF's first IFD, BMP, GIF, WebP, PNM), following each format's
specification, so ``device.sources.files.read_image`` can refuse before decoding.
"""
from __future__ import annotations

import re
import struct
from typing import Optional

# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF = {m for m in range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}
_PNM = re.compile(rb"P[1-7](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)")


def claimed_size(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) from the header, or None for a format it does not know or a header
    too short to say (the decoder then decides, within OpenCV's own pixel limit)."""
    try:
        return _claimed(data)
    except (struct.error, IndexError):   # a truncated header
        return None


def _claimed(d: bytes) -> Optional[tuple[int, int]]:
    if d[:8] == b"\x89PNG\r\n\x1a\n" and d[12:16] == b"IHDR":
        return struct.unpack(">II", d[16:24])
    if d[:2] == b"\xff\xd8":
        return _jpeg(d)
    if d[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(d, "<" if d[:2] == b"II" else ">")
    if d[:2] == b"BM":
        if struct.unpack("<I", d[14:18])[0] == 12:   # OS/2 BITMAPCOREHEADER
            return struct.unpack("<HH", d[18:22])
        w, h = struct.unpack("<ii", d[18:26])
        return abs(w), abs(h)          # a negative height is a top-down bitmap
    if d[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", d[6:10])
    if d[:4] == b"RIFF" and d[8:12] == b"WEBP":
        return _webp(d)
    m = _PNM.match(d[:1024])
    if m:
        return int(m.group(1)), int(m.group(2))
    return None


def _jpeg(d: bytes) -> Optional[tuple[int, int]]:
    i = 2
    while i + 4 <= len(d):
        if d[i] != 0xFF:
            return None
        marker = d[i + 1]
        if marker == 0xFF:             # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:   # markers without a length
            i += 2
            continue
        if marker == 0xDA:             # start of scan before any frame header
            return None
        if marker in _SOF:
            h, w = struct.unpack(">HH", d[i + 5:i + 9])
            return w, h
        i += 2 + struct.unpack(">H", d[i + 2:i + 4])[0]
    return None


def _tiff(d: bytes, e: str) -> Optional[tuple[int, int]]:
    ifd = struct.unpack(e + "I", d[4:8])[0]
    n = struct.unpack(e + "H", d[ifd:ifd + 2])[0]
    size = {}
    for k in range(n):
        entry = d[ifd + 2 + 12 * k: ifd + 14 + 12 * k]
        tag, typ = struct.unpack(e + "HH", entry[:4])
        if tag in (256, 257):          # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            fmt = e + ("H" if typ == 3 else "I")
            size[tag] = struct.unpack(fmt, entry[8:8 + struct.calcsize(fmt)])[0]
    if len(size) == 2:
        return size[256], size[257]
    return None


def _webp(d: bytes) -> Optional[tuple[int, int]]:
    kind = d[12:16]
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", d[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L":
        b = d[21:25]
        if len(b) < 4:
            return None
        w = 1 + (b[0] | (b[1] & 0x3F) << 8)
        h = 1 + (b[1] >> 6 | b[2] << 2 | (b[3] & 0x0F) << 10)
        return w, h
    if kind == b"VP8X":
        b = d[24:30]
        if len(b) < 6:
            return None
        return 1 + int.from_bytes(b[:3], "little"), 1 + int.from_bytes(b[3:], "little")
    return None
