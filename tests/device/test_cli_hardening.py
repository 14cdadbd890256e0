"""Issue 19 part B through the command line: each bad input is one stderr line, exit 2, and
a batch goes on past it. Native-library messages are checked in a real process (F25)."""
import argparse
import json
import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from device.cli import main
from device.common.cli_types import number, positive_float
from tests.conftest import REPO


def _png_claiming(w, h):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


@pytest.fixture
def files(tmp_path, photo_bgr):
    """Real photos (sharp, blurred) and the crafted bad inputs of CASES.md."""
    f = {"sharp": tmp_path / "sharp.jpg", "blurred": tmp_path / "blurred.png",
         "bomb": tmp_path / "bomb40k.png", "int32": tmp_path / "int32.tif",
         "fifo": tmp_path / "fifo.jpg", "text": tmp_path / "text.jpg",
         "trunc": tmp_path / "trunc.png"}
    cv2.imwrite(str(f["sharp"]), photo_bgr)
    cv2.imwrite(str(f["blurred"]), cv2.GaussianBlur(photo_bgr, (0, 0), 4.0))
    f["bomb"].write_bytes(_png_claiming(40000, 40000))
    cv2.imwrite(str(f["int32"]), photo_bgr.astype(np.int32) * 1000)
    os.mkfifo(f["fifo"])
    f["text"].write_text("hello\n" * 10)
    png = f["blurred"].read_bytes()
    f["trunc"].write_bytes(png[:len(png) // 2])
    return {k: str(v) for k, v in f.items()}


def lines(text):
    return [l for l in text.splitlines() if l.strip()]


@pytest.mark.parametrize("bad", ["bomb", "int32", "fifo", "text"])
def test_f13_f14_f15_score_gives_one_line_per_bad_file_and_goes_on(files, capsys, bad):
    assert main(["score", "--json", files[bad], files["sharp"]]) == 2
    out = capsys.readouterr()
    err = lines(out.err)
    assert len(err) == 1 and err[0].startswith(f"focus-assist: error: {files[bad]}: "), err
    assert [json.loads(l)["path"] for l in lines(out.out)] == [files["sharp"]]


def test_f13_score_max_pixels_flag_sets_the_limit(files, capsys):
    assert main(["score", "--json", "--max-pixels", "1000", files["sharp"]]) == 2
    assert "more than the limit of 1,000" in capsys.readouterr().err


def test_f35_sweep_best_index_counts_the_arguments(files, capsys):
    # The unreadable first argument still has index 0: the sharp photo is argument 1.
    args = [files["bomb"], files["sharp"], files["blurred"]]
    assert main(["sweep", "--json", *args]) == 2
    out = capsys.readouterr()
    res = json.loads(out.out)
    assert res["best_index"] == 1 and res["best_path"] == files["sharp"]
    assert res["indices"] == [1, 2] and res["paths"] == args[1:]
    assert 1.0 <= res["refined_index"] <= 2.0
    assert len(lines(out.err)) == 1


def test_f29_sweep_with_an_roi_outside_every_image_adds_no_wrong_summary(files, capsys):
    assert main(["sweep", "--roi", "500,500,20,20", files["sharp"], files["blurred"]]) == 2
    err = lines(capsys.readouterr().err)
    assert len(err) == 2 and all("outside the 512x512 image" in l for l in err), err


def test_f28_an_roi_that_starts_with_a_dash_says_how_to_write_it(files, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["score", "--roi", "-1,0,10,10", files["sharp"]])
    assert exc.value.code == 2
    err = lines(capsys.readouterr().err)
    assert len(err) == 1 and "--roi=-1,0,10,10" in err[0]
    with pytest.raises(SystemExit):
        main(["score", "-dash.jpg"])
    assert "focus-assist score -- -name.jpg" in capsys.readouterr().err


def test_f28_the_joined_form_reaches_the_roi_check(files, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["score", "--roi=-1,0,10,10", files["sharp"]])
    assert exc.value.code == 2
    assert "x and y must be >= 0" in capsys.readouterr().err


def test_f19_run_images_glob_skips_the_unreadable_file(files, tmp_path, capsys):
    jsonl = tmp_path / "f.jsonl"
    # text.jpg sorts before sharp.jpg: the run must go past it.
    assert main(["--log-level", "warning", "run", "--headless", "--source",
                 f"images:{tmp_path}/[st]*.jpg", "--stats", "--log-jsonl", str(jsonl)]) == 0
    stats = json.loads(lines(capsys.readouterr().out)[-1])
    assert stats["frames"] == 1 and stats["source"]["skipped"] == 1
    assert len(jsonl.read_text().splitlines()) == 1


def test_f26_run_on_a_text_file_as_video_is_exit_2(files, capsys):
    assert main(["--log-level", "warning", "run", "--headless", "--source",
                 f"video:{files['text']}", "--stats"]) == 2
    err = lines(capsys.readouterr().err)
    assert err[-1].endswith("no readable frames (not a video, or damaged)")


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_f24_cli_numbers_must_be_finite(text):
    for parse in (positive_float, number(float, 0), number(float)):
        with pytest.raises(argparse.ArgumentTypeError, match="finite"):
            parse(text)
    with pytest.raises(argparse.ArgumentTypeError, match="must be > 0"):
        positive_float("-5")


def _cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "device", *args], cwd=REPO, input=stdin,
                          capture_output=True, timeout=120)


def test_f25_native_library_messages_stay_off_stderr(files, tmp_path):
    """libpng ("PNG input buffer is incomplete"), OpenCV's TIFF error block, FFmpeg's
    "moov atom not found" and "No JPEG data" print from C: only a real process shows them."""
    tiff5 = tmp_path / "multi5ch.tif"
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tiff5, np.zeros((64, 64, 5), np.uint8), photometric="minisblack",
                     planarconfig="contig")
    r = _cli("score", "--json", files["trunc"], str(tiff5), files["sharp"])
    err = lines(r.stderr.decode())
    assert r.returncode == 2
    assert err == [f"focus-assist: error: {files['trunc']}: not an image OpenCV can decode "
                   "(corrupt or unsupported format)",
                   f"focus-assist: error: {tiff5}: not an image OpenCV can decode "
                   "(corrupt or unsupported format)"], err
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\0\1\2" * 1000)
    for spec, tail in ((f"video:{garbage}", "cannot be opened as a video"),
                       (f"video:{files['text']}", "no readable frames (not a video, or damaged)"),
                       ("video:99", "cannot be opened as a video")):
        r = _cli("--log-level", "warning", "run", "--headless", "--source", spec)
        err = lines(r.stderr.decode())
        assert r.returncode == 2 and len(err) == 1 and err[0].endswith(tail), (spec, err)


def test_f30_score_reads_a_piped_image_from_dev_stdin(files):
    data = open(files["sharp"], "rb").read()
    for name in ("/dev/stdin", "-"):
        r = _cli("score", "--json", name, stdin=data)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["path"] == name and (out["width"], out["height"]) == (512, 512)


def test_an_empty_source_is_a_config_error_not_the_default(capsys):
    """CASES.md's note: ``--source ''`` used to run on the default source without a word."""
    rc = main(["--log-level", "warning", "run", "--headless", "--source", "", "--frames", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "source.spec must not be empty" in err[0], err
