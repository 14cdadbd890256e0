"""Issue 19 part B, the image and video readers: every bad file is one InputError line."""
import errno
import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from device.errors import InputError, SourceError
from device.sources import open_source
from device.sources.files import ImageSource, VideoSource, read_image
from device.sources.headers import claimed_size


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(w: int, h: int, rows: bytes = b"\0" * 100) -> bytes:
    """A PNG whose IHDR claims w x h (RGB, 8 bit) over the compressed ``rows``."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows))
            + _chunk(b"IEND", b""))


@pytest.fixture
def good_jpeg(tmp_path, photo_bgr):
    p = tmp_path / "good.jpg"
    cv2.imwrite(str(p), photo_bgr)
    return p


def test_f13_png_header_claiming_40000x40000_is_refused(tmp_path):
    p = tmp_path / "bomb40k.png"
    p.write_bytes(png_claiming(40000, 40000))
    assert p.stat().st_size == 69
    with pytest.raises(InputError, match=r"claims 40000x40000 pixels, more than the limit"):
        read_image(p)


def test_f13_jpeg_with_a_patched_frame_header_is_refused(tmp_path, good_jpeg):
    b = bytearray(good_jpeg.read_bytes())
    i = b.find(b"\xff\xc0")
    b[i + 5:i + 9] = struct.pack(">HH", 65000, 65000)
    p = tmp_path / "bomb_sof.jpg"
    p.write_bytes(bytes(b))
    with pytest.raises(InputError, match="65000x65000"):
        read_image(p)


def test_f13_the_pixel_limit_is_configurable(good_jpeg):
    assert read_image(good_jpeg).shape == (512, 512, 3)
    with pytest.raises(InputError, match="512x512 pixels, more than the limit of 100,000"):
        read_image(good_jpeg, max_pixels=100_000)


def test_f13_headers_of_real_files_give_their_true_size(tmp_path, photo_bgr):
    img = photo_bgr[:300, :400]
    for ext in (".png", ".jpg", ".tif", ".bmp", ".webp", ".ppm", ".pgm"):
        p = tmp_path / f"a{ext}"
        assert cv2.imwrite(str(p), img if ext != ".pgm" else img[:, :, 0])
        assert claimed_size(p.read_bytes()) == (400, 300), ext
    cv2.imwrite(str(tmp_path / "l.webp"), img, [cv2.IMWRITE_WEBP_QUALITY, 101])  # lossless VP8L
    assert claimed_size((tmp_path / "l.webp").read_bytes()) == (400, 300)


def test_f13_run_source_images_refuses_above_the_configured_limit(tmp_path, good_jpeg):
    from device.config import load_config

    src = open_source(f"images:{good_jpeg}", load_config(overrides={"input": {"max_image_pixels": 10_000}}))
    with pytest.raises(InputError, match="none of the 1 files could be read"):
        src.read()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_f14_float_tiffs_in_0_to_1_become_16_bit(tmp_path, photo_bgr, dtype):
    p = tmp_path / "f.tif"
    # Uncompressed: the Pi stack's OpenCV (4.11) writes float32 TIFFs lossily by default.
    cv2.imwrite(str(p), (photo_bgr / 255.0).astype(dtype), [cv2.IMWRITE_TIFF_COMPRESSION, 1])
    img = read_image(p)
    assert img.dtype == np.uint16
    # The same picture: back to 8 bit it matches the photo within rounding.
    assert np.abs((img >> 8).astype(int) - photo_bgr).max() <= 1


def test_f14_int32_tiff_within_16_bit_is_read_and_beyond_it_refused(tmp_path, photo_bgr):
    p = tmp_path / "i.tif"
    cv2.imwrite(str(p), photo_bgr.astype(np.int32) * 256)
    assert np.array_equal(read_image(p), photo_bgr.astype(np.uint16) * 256)
    cv2.imwrite(str(p), photo_bgr.astype(np.int32) * 1000)
    with pytest.raises(InputError, match=r"int32 pixel values span 0\.\.255000"):
        read_image(p)


def test_f14_f25_float_tiff_with_nan_is_refused_without_a_numpy_warning(tmp_path, photo_bgr, recwarn):
    a = photo_bgr[:, :, 0].astype(np.float32) / 255.0
    a[5, 5] = np.nan
    p = tmp_path / "nan.tif"
    cv2.imwrite(str(p), a)
    with pytest.raises(InputError, match="NaN or infinite"):
        read_image(p)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_f15_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is a FIFO, not a regular file"):
        read_image(fifo)
    with pytest.raises(InputError, match="is a FIFO"):
        VideoSource(str(fifo))
    with pytest.raises(InputError, match="character device"):
        read_image("/dev/zero")


def test_f16_an_unsearchable_folder_is_one_line(tmp_path, good_jpeg, monkeypatch):
    # Root ignores folder permissions, so the kernel's answer is injected.
    real_stat = os.stat

    def stat(path, *a, **kw):
        if str(path).startswith(str(tmp_path / "noxdir")):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *a, **kw)

    monkeypatch.setattr(os, "stat", stat)
    with pytest.raises(InputError, match="permission denied .*folder on its path"):
        read_image(tmp_path / "noxdir" / "a.jpg")


def test_f19_images_source_skips_an_unreadable_file_and_goes_on(tmp_path, photo_bgr, caplog):
    cv2.imwrite(str(tmp_path / "a.jpg"), photo_bgr)
    (tmp_path / "b_empty.jpg").write_bytes(b"")
    (tmp_path / "c_text.jpg").write_text("not a picture")
    cv2.imwrite(str(tmp_path / "d.jpg"), photo_bgr[::2, ::2])
    src = ImageSource(str(tmp_path / "*.jpg"))
    shapes = [f.grey.shape for f in src]
    assert shapes == [(512, 512), (256, 256)]
    assert src.info()["skipped"] == 2
    assert sum("skipped:" in r.message for r in caplog.records) == 2


def test_f26_video_of_a_text_file_is_an_input_error_not_zero_frames(tmp_path):
    p = tmp_path / "text.jpg"
    p.write_text("hello\n" * 10)
    src = VideoSource(str(p))
    with pytest.raises(InputError, match="no readable frames"):
        src.read()
    src.close()


def test_f27_a_symlink_loop_is_named(tmp_path):
    os.symlink(tmp_path / "loopB", tmp_path / "loopA")
    os.symlink(tmp_path / "loopA", tmp_path / "loopB")
    with pytest.raises(InputError, match="loopA: symlink loop"):
        read_image(tmp_path / "loopA")
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
    with pytest.raises(InputError, match="broken symlink"):
        read_image(tmp_path / "dangling.jpg")


def test_f31_a_null_byte_in_a_path_is_one_error():
    with pytest.raises(InputError, match="null byte"):
        read_image("a\x00b.jpg")


class _Cap:
    """A stand-in for cv2.VideoCapture: ``frames`` good reads, then the connection drops."""

    def __init__(self, frames, img):
        self.left, self.img, self.released = frames, img, False

    def isOpened(self):
        return True

    def read(self):
        if self.left > 0:
            self.left -= 1
            return True, self.img
        return False, None

    def get(self, _prop):
        return 0.0

    def release(self):
        self.released = True


def test_f22_a_network_camera_that_drops_is_reopened_with_backoff(photo_bgr):
    caps = [_Cap(2, photo_bgr), _Cap(0, photo_bgr), _Cap(0, photo_bgr), _Cap(10 ** 9, photo_bgr)]
    opened, waits = [], []

    def opener(target):
        opened.append(target)
        return caps[len(opened) - 1]

    def wait(seconds):     # the injected sleep: records the backoff, never sleeps
        waits.append(seconds)
        return False

    src = VideoSource("http://127.0.0.1:9/x.mjpg", timeout_s=5.0, backoff_s=0.5,
                      backoff_max_s=1.0, opener=opener, wait=wait)
    try:
        frames = [src.read() for _ in range(5)]
        assert all(f is not None and f.grey.shape == (512, 512) for f in frames)
        # Dropped after 2 frames; two reopens that fail to read; the third one streams.
        assert waits[:3] == [0.5, 1.0, 1.0]
        assert len(opened) == 4 and caps[0].released and src.info()["reopens"] == 3
    finally:
        src.close()


def test_f22_a_stream_that_stays_down_is_a_fault_not_a_hang(photo_bgr):
    def wait(seconds):
        return False

    src = VideoSource("http://127.0.0.1:9/x.mjpg", timeout_s=0.2, opener=lambda t: _Cap(0, photo_bgr),
                      wait=wait)
    try:
        with pytest.raises(SourceError, match="no frame for 0.2 s"):
            src.read()
    finally:
        src.close()
