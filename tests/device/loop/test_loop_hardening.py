"""Hardening of the loop's frame log (issue #19, case F10 of CASES.md)."""
from __future__ import annotations

import json
import logging

import pytest

from device.loop.frame_loop import JsonlSink
from device.sources.base import Frame
from tests.device.results import result


def frame_results(photo_grey, n, start=0):
    for i in range(start, start + n):
        yield Frame(grey=photo_grey, timestamp=float(i), index=i), result(float(i), frame=i, timestamp=float(i))


def test_f10_full_disk_pauses_the_frame_log_with_one_line(photo_grey, caplog):
    now = [0.0]
    sink = JsonlSink("/dev/full", retry_s=30.0, clock=lambda: now[0])     # every write: ENOSPC
    with caplog.at_level(logging.INFO):
        for i, (f, r) in enumerate(frame_results(photo_grey, 200)):
            now[0] = i / 30
            sink.on_frame(f, r)                 # never raises
    errors = [r for r in caplog.records if "frame log" in r.getMessage()]
    assert len(errors) == 1 and errors[0].levelno == logging.ERROR and "paused" in errors[0].getMessage()
    assert sink.stats() == {"frame_log": {"lines_lost": 200, "paused": True}}
    sink.close()


def test_f10_the_frame_log_resumes_when_writes_work_again(tmp_path, photo_grey, caplog):
    now = [0.0]
    path = tmp_path / "frames.jsonl"
    sink = JsonlSink(str(path), retry_s=30.0, clock=lambda: now[0])
    good = sink._fh
    frames = list(frame_results(photo_grey, 6))
    sink.on_frame(*frames[0])
    sink._fh = open("/dev/full", "wb", buffering=0)       # the card fills up
    sink.on_frame(*frames[1])
    now[0] = 10.0
    sink.on_frame(*frames[2])                             # paused: not even tried
    sink._fh.close()
    sink._fh = good                                       # space again
    now[0] = 29.0
    sink.on_frame(*frames[3])
    assert sink.stats()["frame_log"] == {"lines_lost": 3, "paused": True}
    with caplog.at_level(logging.INFO):
        now[0] = 31.0
        sink.on_frame(*frames[4])
        sink.on_frame(*frames[5])
    assert "writing again (3 lines lost" in caplog.text
    sink.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["frame"] for r in rows] == [0, 4, 5]


def test_f10_run_with_the_frame_log_on_a_full_disk_finishes(capsys):
    from device.cli import main

    rc = main(["--log-level", "warning", "run", "--headless", "--source", "sim", "--frames", "40",
               "--log-jsonl", "/dev/full", "--stats"])
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and summary["frames"] == 40 and summary["frame_log"]["lines_lost"] == 40
    assert len([ln for ln in err.splitlines() if "frame log" in ln]) == 1 and "Traceback" not in err


# --- run --log-jsonl <fifo>: opening a FIFO for writing used to block until a reader came ----

def _open_within(path, seconds=10.0):
    """JsonlSink(path) on a thread: (sink or exception); fails the test if it blocks."""
    import threading

    box = {}

    def go():
        try:
            box["sink"] = JsonlSink(str(path))
        except OSError as exc:
            box["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "opening the frame log blocked"
    return box


def test_frame_log_on_a_fifo_with_no_reader_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "frames.fifo"
    os.mkfifo(fifo)
    box = _open_within(fifo)
    assert "sink" not in box and "FIFO with no reader" in str(box["error"])


def test_frame_log_on_a_fifo_never_blocks_the_loop_when_the_reader_stalls(tmp_path, photo_grey, caplog):
    import os

    fifo = tmp_path / "frames.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with caplog.at_level(logging.INFO):
            sink = _open_within(fifo)["sink"]
        frames = list(frame_results(photo_grey, 3))
        for f, r in frames:
            sink.on_frame(f, r)
        got = os.read(reader, 1 << 16).decode().splitlines()
        assert [json.loads(line)["frame"] for line in got] == [0, 1, 2]
        # The reader stops reading: once the pipe is full each line is dropped, none blocks.
        for f, r in frame_results(photo_grey, 2000, start=3):
            sink.on_frame(f, r)
        lost = sink.stats()["frame_log"]["lines_lost"]
        assert lost > 0 and not sink.stats()["frame_log"]["paused"]
        messages = [r.getMessage() for r in caplog.records if "frame log" in r.getMessage()]
        assert any("is a FIFO" in m for m in messages)
        assert sum("not keeping up" in m for m in messages) == 1
        # Reading again: the next line goes through whole, on a line of its own.
        while True:
            try:
                if not os.read(reader, 1 << 16):
                    break
            except BlockingIOError:
                break
        f, r = next(frame_results(photo_grey, 1, start=5000))
        sink.on_frame(f, r)
        assert json.loads(os.read(reader, 1 << 16).decode().splitlines()[-1])["frame"] == 5000
        sink.close()
    finally:
        os.close(reader)


def test_run_log_jsonl_on_a_fifo_with_no_reader_is_one_line_and_exit_2(tmp_path):
    import os
    import subprocess
    import sys

    fifo = tmp_path / "frames.fifo"
    os.mkfifo(fifo)
    cp = subprocess.run([sys.executable, "-m", "device", "run", "--headless", "--source", "sim",
                         "--frames", "2", "--log-jsonl", str(fifo)],
                        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    err = [ln for ln in cp.stderr.splitlines() if "error" in ln.lower()]
    assert cp.returncode == 2, cp.stderr
    assert len(err) == 1 and "FIFO with no reader" in err[0] and "Traceback" not in cp.stderr


# --- the frame log on its own thread (what run uses) ---------------------------------------------

def test_background_frame_log_writes_the_same_lines_in_order(tmp_path, photo_grey):
    frames = list(frame_results(photo_grey, 50))
    sync_path, bg_path = tmp_path / "sync.jsonl", tmp_path / "bg.jsonl"
    sync = JsonlSink(str(sync_path))
    bg = JsonlSink(str(bg_path), background=True)
    for f, r in frames:
        sync.on_frame(f, r)
        bg.on_frame(f, r)
    sync.close()
    bg.close()                                            # drains the queue first
    assert bg_path.read_bytes() == sync_path.read_bytes()
    assert [json.loads(line)["frame"] for line in bg_path.read_text().splitlines()] == list(range(50))
    assert bg.stats() == {"frame_log": {"lines_lost": 0, "paused": False}}


def test_background_frame_log_on_a_full_disk_counts_every_line_and_says_so_once(photo_grey, caplog):
    sink = JsonlSink("/dev/full", background=True)
    with caplog.at_level(logging.INFO):
        for f, r in frame_results(photo_grey, 120):
            sink.on_frame(f, r)
        sink.close()
    errors = [r for r in caplog.records if "frame log" in r.getMessage()]
    assert len(errors) == 1 and "paused" in errors[0].getMessage()
    assert sink.stats()["frame_log"]["lines_lost"] == 120


def test_background_frame_log_drops_lines_when_the_disk_falls_behind_never_frames(tmp_path, photo_grey, caplog):
    """A write that hangs (a stalled card) must cost lines, not memory or the loop: at
    most ``queue_max`` records wait, the rest are counted lost with one warning."""
    import threading

    path = tmp_path / "frames.jsonl"
    sink = JsonlSink(str(path), background=True, queue_max=8)
    release, entered = threading.Event(), threading.Event()
    real_write = sink._write

    def stalled(data):
        entered.set()
        release.wait(10)
        real_write(data)
    sink._write = stalled
    frames = list(frame_results(photo_grey, 30))
    sink.on_frame(*frames[0])
    assert entered.wait(5)                                # the writer holds line 0
    with caplog.at_level(logging.WARNING):
        for f, r in frames[1:]:
            sink.on_frame(f, r)                           # returns at once every time
    assert sink.stats()["frame_log"]["lines_lost"] == 29 - 8
    assert sum("not keeping up" in r.getMessage() for r in caplog.records) == 1
    release.set()
    sink.close()
    assert [json.loads(line)["frame"] for line in path.read_text().splitlines()] == list(range(9))
