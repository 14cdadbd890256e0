"""The demo's pictures: what the viewfinder showed at and off the peak, the plots, the page."""
from __future__ import annotations

import cv2
import numpy as np

from device.app import demo_pictures as dp
from device.app.demo import _capture_frames, _pictures

MANUAL = "sim:ring_speed=9,start_position=0,seed=11,fps=0"
AF_ON = {"motor": {"enabled": True, "driver": "sim"}, "autofocus": {"enabled": True, "mode": "once"}}


def test_replay_keeps_the_overlay_pictures_of_the_peak_and_of_an_off_focus_frame():
    rec = dp.replay(MANUAL, {}, 45)
    assert len(rec.focus) == len(rec.lens) == 45
    assert rec.focus[rec.peak_frame] == max(rec.focus)
    assert rec.focus[rec.off_frame] == min(rec.focus)
    assert rec.focus[rec.peak_frame] > 5 * rec.focus[rec.off_frame]
    for pic in (rec.peak_picture, rec.off_picture):
        assert pic.shape == (480, 640, 3) and pic.dtype == np.uint8
    # The HUD's bar is drawn in the top-left corner: it is not part of the scene.
    assert not np.array_equal(rec.peak_picture[:40, :200], rec.off_picture[:40, :200])


def test_the_autofocus_plot_follows_the_lens_where_each_frame_was_exposed():
    rec = dp.replay("sim:seed=23,fps=0", AF_ON, 40)
    from device.sources import open_source

    sim = open_source("sim:seed=23")
    best, depth = sim.best_position, sim.depth_of_field
    sim.close()
    assert rec.af_state[-1] == "focused"
    assert abs(rec.lens[-1] - best) <= depth / 2
    # The sharpest frames are the ones exposed nearest the best position.
    sharpest = int(np.argmax(rec.focus))
    assert abs(rec.lens[sharpest] - best) <= depth / 2
    bluntest = int(np.argmin(rec.focus))
    assert abs(rec.lens[bluntest] - best) > depth


def _green_columns(img) -> set[int]:
    b, g, r = (img[..., i].astype(int) for i in range(3))
    mask = (g > 140) & (r < 90) & (b < 90)
    return {int(x) for x in np.nonzero(mask.sum(axis=0) > 0.5 * img.shape[0] * 0.7)[0]}


def test_the_focus_curve_plot_marks_each_capture_at_its_frame():
    curve = [float(v) for v in np.r_[np.linspace(10, 100, 30), np.linspace(100, 10, 30)]]
    plain = dp.focus_curve_plot(curve, [])
    marked = dp.focus_curve_plot(curve, [29])
    assert not _green_columns(plain)
    cols = _green_columns(marked)
    assert cols
    # Frame 29 of 0..59 lies at 29/59 of the plot area (62 px margin left, 14 right).
    expect = 62 + (900 - 62 - 14) * 29 / 59
    assert all(abs(c - expect) <= 2 for c in cols)


def test_the_page_shows_every_picture_escapes_the_summary_and_loads_nothing_from_elsewhere(tmp_path):
    page = dp.write_index(tmp_path, ["focus <peaked> & fell"],
                          [("focus_curve.png", "curve"), ("viewfinder_at_peak.png", "peak")]).read_text()
    assert 'src="focus_curve.png"' in page and 'src="viewfinder_at_peak.png"' in page
    assert "focus &lt;peaked&gt; &amp; fell" in page
    assert "<script" not in page and "http" not in page


def test_pictures_are_written_as_decodable_pngs_and_the_captures_come_from_their_sidecars(tmp_path):
    caps = tmp_path / "captures"
    caps.mkdir()
    (caps / "a.json").write_text('{"frame_index": 12}')
    (caps / "b.json").write_text('{"frame_index": 3}')
    (caps / "broken.json").write_text("{")
    frames = _capture_frames(caps)
    assert frames == [3, 12]
    shown = _pictures(tmp_path, MANUAL, 20, [float(i) for i in range(20)], frames, None)
    names = [n for n, _ in shown]
    assert names == ["focus_curve.png", "viewfinder_at_peak.png", "viewfinder_off_focus.png"]
    for n in names:
        img = cv2.imread(str(tmp_path / n))
        assert img is not None and img.size > 0


def test_each_demo_run_captures_into_its_own_folder_so_earlier_runs_are_not_counted(tmp_path):
    from device.app.demo import run_capture_dir

    first = run_capture_dir(tmp_path, 1_800_000_000.0)
    assert first.parent == tmp_path / "captures"
    first.mkdir(parents=True)
    (first / "focus-old.jpg").write_bytes(b"earlier run")
    second = run_capture_dir(tmp_path, 1_800_000_000.0)       # the same second again
    assert second != first and second.parent == first.parent and not second.exists()
    assert (first / "focus-old.jpg").read_bytes() == b"earlier run"
