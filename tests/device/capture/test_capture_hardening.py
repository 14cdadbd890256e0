"""Hardening of captures (issue #19, cases F5, F9, F32, F34 of CASES.md)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time

import pytest

from device.capture.sink import CaptureSink, CaptureWriter, encode_image, is_own_temp
from device.common import atomic
from device.config import CaptureConfig
from device.service.logs import Throttle
from device.sources.base import Frame
from tests.device.results import result


def frames(photo_bgr, n: int):
    grey = photo_bgr[..., 1]
    for i in range(n):
        yield Frame(grey=grey, color=photo_bgr, timestamp=float(i), index=i), result(1.0, frame=i, timestamp=float(i))


def old(path):
    os.utime(path, (1, 1))          # older than the two minutes a live writer may need
    return path


# --- F5 -----------------------------------------------------------------------------------

def test_f5_startup_cleanup_deletes_only_our_own_marked_temp_files(tmp_path):
    theirs = [".thesis.tmp", ".report.tmp.docx", ".focus.tmp",
              ".focus-20260101-000000-f000001.jpg.abc123.tmp.jpg",   # our old, unmarked naming
              ".other-20260101-000000-f000001.jpg.abc123.fa-tmp.jpg",  # another prefix's
              "focus-20260101-000000-f000002.jpg.x.fa-tmp.jpg"]      # not hidden
    ours = [".focus-20260101-000000-f000003.jpg.k2j3h4.fa-tmp.jpg", ".write-test.q1w2e3.fa-tmp"]
    for name in theirs + ours:
        (tmp_path / name).write_text("important")
        old(tmp_path / name)
    fresh = tmp_path / ".focus-20260101-000000-f000004.png.zz9.fa-tmp.png"
    fresh.write_text("being written by another run right now")
    sink = CaptureSink(CaptureConfig(enabled=True, min_free_mb=0), tmp_path)
    sink.close()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(theirs + [fresh.name])
    assert all(is_own_temp(n, "focus") for n in ours) and not any(is_own_temp(n, "focus") for n in theirs)


def test_f5_our_writers_name_their_temporaries_with_the_mark(tmp_path):
    seen = []
    atomic.atomic_write_via(tmp_path / "focus-x.png", lambda t: seen.append(t.name) or t.write_bytes(b"1"))
    assert is_own_temp(seen[0], "focus") and seen[0].endswith(".fa-tmp.png")


# --- F9 -----------------------------------------------------------------------------------

def _killed_after(links: int, folder, data) -> None:
    """In a forked child: capture once, and die like kill -9 right after ``links`` links."""
    pid = os.fork()
    if pid == 0:
        count = [0]
        real_link = os.link

        def link(src, dst, **kw):
            if count[0] == links:
                os._exit(9)            # no cleanup, no finally: as SIGKILL
            count[0] += 1
            real_link(src, dst, **kw)
        try:
            atomic.os.link = link
            CaptureWriter(folder).write(ext=".png", frame_index=links, sidecar={"n": links}, data=data)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_f9_kill_9_at_any_step_never_leaves_an_image_without_its_sidecar(tmp_path, photo_bgr):
    data = encode_image(photo_bgr[:120, :160], "png")
    for links in range(3):                 # before the first link, between the two, after both
        folder = tmp_path / f"k{links}"
        folder.mkdir()
        _killed_after(links, folder, data)
        images = [p for p in folder.iterdir() if p.suffix == ".png" and not p.name.startswith(".")]
        sidecars = [p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith(".")]
        for img in images:                 # the guarantee
            meta = json.loads(img.with_suffix(".json").read_text())
            assert meta["image"] == img.name and meta["bytes"] == img.stat().st_size
        # what a kill may leave instead: a sidecar naming an image that never appeared
        assert len(images) == (1 if links == 2 else 0) and len(sidecars) == (0 if links == 0 else 1)
        hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
        assert all(is_own_temp(n, "focus") for n in hidden) and len(hidden) == 2 - links   # the image's, and the sidecar's until it is linked


# --- F32 ----------------------------------------------------------------------------------

def test_f32_shutter_says_no_when_the_capture_dir_is_gone(tmp_path, photo_bgr, caplog):
    folder = tmp_path / "caps"
    sink = CaptureSink(CaptureConfig(enabled=True, min_free_mb=0), folder)
    try:
        for f, r in frames(photo_bgr, 2):
            sink.on_frame(f, r)
        shutil.rmtree(folder)
        with caplog.at_level(logging.WARNING):
            reply = sink.capture_now()
        assert reply["ok"] is False and "is gone" in reply["reason"]
        assert not folder.exists()          # not recreated: it may be an unmounted card
        assert sink.status().skipped["no_dir"] == 1 and "is gone" in caplog.text
        folder.mkdir()
        assert sink.capture_now()["ok"] is True
    finally:
        sink.close()
    assert sink.count == 1


# --- F34 ----------------------------------------------------------------------------------

def test_f34_throttle_logs_once_per_interval_and_counts_the_rest(caplog):
    now = [100.0]
    t = Throttle(logging.getLogger("t"), 10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "t"):
        shown = [t.warning("frame %d not saved", i) for i in range(50)]
        now[0] += 9.9
        shown.append(t.warning("frame %d not saved", 50))
        now[0] += 0.2
        shown.append(t.warning("frame %d not saved", 51))
        shown.append(t.warning("another message"))
    assert shown.count(True) == 3 and shown[0] and shown[-2] and shown[-1]
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == ["frame 0 not saved", "frame 51 not saved (and 50 more like it since the last one, not shown)",
                    "another message"]


def test_f34_a_held_shutter_with_a_stalled_writer_logs_one_line(tmp_path, photo_bgr, caplog):
    sink = CaptureSink(CaptureConfig(enabled=True, min_free_mb=0), tmp_path)
    gate = threading.Event()
    real = sink._write
    sink._write = lambda job: (gate.wait(10), real(job))
    try:
        for f, r in frames(photo_bgr, 2):
            sink.on_frame(f, r)
        with caplog.at_level(logging.WARNING):
            replies = [sink.capture_now() for _ in range(500)]
        refused = [r for r in replies if not r["ok"]]
        assert len(refused) >= 400 and all(r["reason"] == "writer busy" for r in refused)
        lines = [r for r in caplog.records if "writer is behind" in r.getMessage()]
        assert len(lines) == 1, len(lines)
    finally:
        gate.set()
        sink.close()
    assert sink.count == 500 - len(refused)


# --- the notes of CASES.md, decided ---------------------------------------------------------

def test_note_captures_are_owner_only_files(tmp_path, photo_bgr):
    path = CaptureWriter(tmp_path).write(ext=".png", frame_index=1, sidecar={},
                                         data=encode_image(photo_bgr[:60, :80], "png"))
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.with_suffix(".json")).st_mode & 0o777 == 0o600


def test_note_an_empty_capture_dir_is_a_config_error(capsys):
    from device.cli import main
    from device.config import load_config
    from device.errors import ConfigError

    with pytest.raises(ConfigError, match="capture.dir must not be empty"):
        load_config(overrides={"capture": {"dir": ""}})
    rc = main(["--log-level", "warning", "run", "--headless", "--source", "sim", "--frames", "1",
               "--capture-dir", ""])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "capture.dir must not be empty" in err[0], err
