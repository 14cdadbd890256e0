"""Benchmark: what the hardened image reader costs over a bare ``cv2.imdecode``, and what a
decompression bomb costs with and without the header check.

Side by side in one run, on real photographs (scikit-image's astronaut, as JPEG and PNG at
512x512 and resized to the HQ Camera's 4056x3040):

* bare: ``np.fromfile`` + ``cv2.imdecode(IMREAD_UNCHANGED)``, what ``read_image`` did before;
* hardened: ``device.sources.files.read_image`` (stat checks, header size check, stderr
  capture around the decode, depth check).

Then a valid 16000x16000 all-black PNG (256 megapixels, under OpenCV's own 2^30 limit, so
the bare decode goes through): peak RSS of the bare decode and of ``read_image`` (refused
from the header) in separate child processes.

    python bench/bench_read_image.py [--repeat 20]
"""
from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import cv2
import numpy as np

from device.sources.files import read_image


def _bare(path: str) -> np.ndarray:
    return cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)


def _cpu_ms(fn, path: str, repeat: int) -> float:
    fn(path)                                   # warm caches and the codec
    t = time.process_time()
    for _ in range(repeat):
        fn(path)
    return (time.process_time() - t) / repeat * 1e3


def _bomb_png(path: str, side: int) -> None:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    comp, row = zlib.compressobj(9), b"\0" * (1 + side)     # grey, filter byte + zeros
    idat = b"".join(comp.compress(row * 100) for _ in range(side // 100)) + comp.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                 + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _child_rss_kb(code: str) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-c", code + "\nimport resource;"
                        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                       capture_output=True, text=True)
    return int(r.stdout.split()[-1]), (r.stdout.split()[0] if len(r.stdout.split()) > 1 else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"load average {os.getloadavg()[0]:.2f}; CPU ms per image, mean of {args.repeat}")
        print(f"{'image':<24}{'bare':>10}{'hardened':>10}{'ratio':>8}")
        for name, img in (("512x512", photo), ("4056x3040", cv2.resize(photo, (4056, 3040)))):
            for ext in (".jpg", ".png"):
                p = os.path.join(tmp, f"a{name}{ext}")
                cv2.imwrite(p, img)
                b, h = _cpu_ms(_bare, p, args.repeat), _cpu_ms(read_image, p, args.repeat)
                print(f"{name + ext:<24}{b:>10.2f}{h:>10.2f}{h / b:>8.2f}")
        bomb = os.path.join(tmp, "bomb16k.png")
        _bomb_png(bomb, 16000)
        print(f"\n16000x16000 PNG ({os.path.getsize(bomb) / 1e6:.2f} MB): peak RSS of a child process")
        bare_kb, _ = _child_rss_kb(f"import cv2, numpy as np\n"
                                   f"img = cv2.imdecode(np.fromfile({bomb!r}, np.uint8), -1)\n"
                                   f"print(img.shape[0])")
        hard_kb, _ = _child_rss_kb(f"from device.sources.files import read_image\n"
                                   f"from device.errors import InputError\n"
                                   f"try:\n    read_image({bomb!r})\nexcept InputError:\n    print('refused')")
        base_kb, _ = _child_rss_kb("import cv2, numpy as np\nfrom device.sources.files import read_image\nprint(0)")
        print(f"{'bare imdecode':<24}{bare_kb / 1024:>10.0f} MB")
        print(f"{'read_image (refused)':<24}{hard_kb / 1024:>10.0f} MB")
        print(f"{'imports alone':<24}{base_kb / 1024:>10.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
