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
