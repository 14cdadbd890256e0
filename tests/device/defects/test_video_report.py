"""``focus-assist defects VIDEO --report DIR``: persistent defects, transient errors, focus curve."""
import json

import cv2
import numpy as np
import pytest

from device.cli import main

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image photos are needed")

H, W, N = 240, 320, 24
STUCK = [(40, 50), (150, 220), (200, 120)]          # (y, x) on every frame
TRANSIENT = {7: [(100, 100), (30, 280)], 15: [(180, 60)]}


def extreme(img, y, x):
    """An achromatic extreme opposite to the scene around (y, x): an unmistakable error."""
    return 0 if img[y - 3:y + 4, x - 3:x + 4].mean() > 127 else 255


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    d = tmp_path_factory.mktemp("video")
    path = d / "clip.avi"
    photo = skimage_data.astronaut()[..., ::-1]
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    w.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    rng = np.random.default_rng(1)
    for i in range(N):
        oy, ox = rng.integers(0, 512 - H), rng.integers(0, 512 - W)
        f = photo[oy:oy + H, ox:ox + W].copy()
        if i < N // 2:                     # defocused, then sharp: a focus curve with a step
            f = cv2.GaussianBlur(f, (0, 0), 2.5)
        for y, x in STUCK + TRANSIENT.get(i, []):
            f[y, x] = extreme(f, y, x)
        w.write(f)
    w.release()
    return path


def test_report_lists_persistent_defects_transient_frames_and_the_focus_curve(video, tmp_path, capsys):
    out = tmp_path / "rep"
    # The ROI avoids the defects: a blurred frame's only sharp content would be them.
    assert main(["defects", str(video), "--report", str(out), "--json", "--no-progress",
                 "--roi", "130,60,170,80"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["frames"] == N and line["truncated"] is False
    data = json.loads((out / "defects.json").read_text())
    found = {(d["y"], d["x"]) for d in data["persistent"]}
    assert all(any(abs(y - a) <= 1 and abs(x - b) <= 1 for a, b in found) for y, x in STUCK), found
    assert len(found) == len(STUCK)
    frames = {t["frame"]: t for t in data["transients"]}
    for i, pts in TRANSIENT.items():
        assert i in frames, sorted(frames)
        got = {(e["y"], e["x"]) for e in frames[i]["errors"]}
        assert all(any(abs(y - a) <= 1 and abs(x - b) <= 1 for a, b in got) for y, x in pts)
        assert frames[i]["time_s"] == pytest.approx(i / 10, abs=0.11)
    assert len(frames) <= len(TRANSIENT) + 2          # texture is not reported as errors
    f = data["focus"]
    assert len(f["values"]) == N and f["best_frame"] >= N // 2
    png = cv2.imread(str(out / "focus_curve.png"))
    assert png is not None and png.shape[1] >= 600
    md = (out / "report.md").read_text()
    assert "Persistent pixel defects" in md and "focus_curve.png" in md and "truncated" not in md
    assert (out / "transients.csv").read_text().startswith("frame,time_s,x,y")
    # A second run never overwrites a finished report.
    assert main(["defects", str(video), "--report", str(out), "--no-progress"]) == 2
    assert "already holds a report.md" in capsys.readouterr().err


def test_a_still_video_lists_its_stuck_pixels_as_undecided(tmp_path, capsys):
    """A tripod on a still scene: the stuck pixels persist, nothing around them changes,
    so the report confirms none and lists them as undecided, pointing to the dark check."""
    path = tmp_path / "still.avi"
    f = np.ascontiguousarray(skimage_data.astronaut()[:H, :W, ::-1])
    for y, x in STUCK:
        f[y, x] = extreme(f, y, x)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    w.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    for _ in range(12):
        w.write(f)
    w.release()
    out = tmp_path / "rep"
    assert main(["defects", str(path), "--report", str(out), "--json", "--no-progress"]) == 0
    data = json.loads((out / "defects.json").read_text())
    assert data["persistent"] == []
    und = {(d["y"], d["x"]) for d in data["undecided"]}
    # The third sits in busy texture, where one still frame does not make it a candidate.
    assert all(any(abs(y - a) <= 1 and abs(x - b) <= 1 for a, b in und) for y, x in STUCK[:2]), und
    assert "Undecided" in (out / "report.md").read_text() and "--dark" in (out / "report.md").read_text()


def test_truncated_video_is_reported_up_to_where_it_ends(video, tmp_path, capsys):
    cut = tmp_path / "cut.avi"
    raw = video.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    out = tmp_path / "rep"
    assert main(["defects", str(cut), "--report", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "truncated" in err and "Traceback" not in err
    data = json.loads((out / "defects.json").read_text())
    assert data["truncated"] is True and 0 < data["frames"] < N
    assert "**The video is truncated**" in (out / "report.md").read_text()


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_a_video_that_cannot_be_opened_is_one_line_and_status_2(tmp_path, capsys, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    assert main(["defects", str(bad), "--report", str(tmp_path / "rep"), "--no-progress"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("focus-assist")]
    assert len(err) == 1 and "bad.mp4" in err[0]
    assert main(["defects", str(tmp_path / "missing.mp4"), "--report", str(tmp_path / "r2")]) == 2


def test_plot_without_matplotlib_is_still_a_png():
    from device.defects.video_report import _plot_cv

    png = _plot_cv([0.0, 0.1, 0.2, 0.3], [1.0, 3.0, 2.0, 0.5], 1)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (320, 900, 3)
