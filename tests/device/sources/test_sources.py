import cv2
import numpy as np
import pytest

from device.config import SimConfig, load_config
from device.errors import InputError, SourceError
from device.scoring.measures import focus_value
from device.sources import open_source
from device.sources.sim import SimCamera
from tests.device import fake_picamera2


def _settled(cam: SimCamera, position: float):
    cam.lens_position = position
    cam.read()                      # exposed before the move
    return cam.read()


def test_sim_blur_grows_with_lens_distance_from_best_focus():
    cam = SimCamera(SimConfig(seed=3))
    best = cam.best_position
    offsets = [0, 15, 40, 90, 200]
    values = [focus_value(_settled(cam, best + d).grey) for d in offsets]
    radii = [cam.blur_radius(best + d) for d in offsets]
    assert radii == sorted(radii) and radii[0] == 0
    assert values == sorted(values, reverse=True), values
    assert values[0] > 5 * values[-1]


def test_sim_is_symmetric_about_best_focus_within_noise():
    cam = SimCamera(SimConfig(seed=5, breathing=0.0))
    near = focus_value(_settled(cam, cam.best_position - 60).grey)
    far = focus_value(_settled(cam, cam.best_position + 60).grey)
    assert near == pytest.approx(far, rel=0.1)


def test_sim_frame_lags_the_lens_by_one_read():
    cam = SimCamera(SimConfig(seed=1))
    cam.lens_position = cam.best_position
    cam.read(); cam.read()
    sharp = focus_value(cam.read().grey)
    cam.lens_position = cam.best_position + 150
    first_after_move = focus_value(cam.read().grey)
    second_after_move = focus_value(cam.read().grey)
    assert first_after_move == pytest.approx(sharp, rel=0.1)
    assert second_after_move < 0.5 * sharp


def test_sim_noise_is_added_after_blur_and_frames_are_8_bit():
    cam = SimCamera(SimConfig(seed=2))
    a, b = _settled(cam, cam.best_position + 300), cam.read()
    assert a.grey.dtype == np.uint8 and a.color.shape == (480, 640, 3)
    diff = a.grey.astype(int) - b.grey.astype(int)
    assert 0.5 < diff.std() < 10       # fresh sensor noise on every frame, even when blurred
    assert a.index + 1 == b.index


def test_sim_exposes_truth_and_respects_options():
    cam = open_source("sim:scene=coffee,seed=4,depth_of_field=8,best_position=300,width=320,height=240")
    with cam:
        assert cam.best_position == 300 and cam.depth_of_field == 8
        f = cam.read()
        assert f.grey.shape == (240, 320)
        cam.lens_position = 5000
        assert cam.lens_position == cam.lens_range
        assert set(cam.truth()) == {"lens_position", "best_position", "depth_of_field"}


def test_sim_breathing_changes_magnification():
    cam = SimCamera(SimConfig(seed=1, breathing=0.2, max_blur_px=0.1))
    a = _settled(cam, 0).grey.astype(np.float32)
    b = _settled(cam, cam.lens_range).grey.astype(np.float32)
    # Same blur (capped), different scale: the frames no longer line up.
    assert np.abs(a - b).mean() > 5


@pytest.mark.parametrize("spec", ["sim:nope=1", "sim:width=10", "sim:seed", "bogus", "video:", "images:"])
def test_bad_source_specs_are_input_errors(spec):
    with pytest.raises(InputError):
        open_source(spec)


def test_sim_fault_hooks():
    cam = open_source("sim:fail_after=2")
    cam.read(); cam.read()
    with pytest.raises(SourceError):
        cam.read()


def test_images_source_reads_sorted_files_in_order(tmp_path, photo_bgr):
    for i in (2, 0, 1):
        img = cv2.GaussianBlur(photo_bgr, (0, 0), 1 + i)
        cv2.imwrite(str(tmp_path / f"f{i}.png"), img)
    with open_source(f"images:{tmp_path}/*.png") as src:
        assert not src.live
        frames = list(src)
    assert [f.index for f in frames] == [0, 1, 2]
    values = [focus_value(f.grey) for f in frames]
    assert values == sorted(values, reverse=True)


def test_images_source_of_only_corrupt_files_is_an_input_error(tmp_path):
    # One unreadable file is skipped (issue 19 F19); when none can be read, the run stops.
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with open_source(f"images:{tmp_path}/*.png") as src:
        with pytest.raises(InputError, match="none of the 1 files could be read"):
            src.read()


def test_video_file_source_yields_every_frame_in_order(tmp_path, photo_bgr):
    path = tmp_path / "clip.avi"
    img = cv2.resize(photo_bgr, (320, 240))
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    assert vw.isOpened()
    for i in range(7):
        vw.write(np.roll(img, 5 * i, axis=1))
    vw.release()
    with open_source(f"video:{path}") as src:
        assert not src.live
        frames = list(src)
    assert len(frames) == 7 and frames[0].grey.shape == (240, 320)


def test_video_source_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        open_source(f"video:{tmp_path}/none.mp4")


def test_picamera2_source_scores_the_lores_y_plane(monkeypatch, photo_bgr):
    fake = fake_picamera2.install(monkeypatch, photo_bgr)
    cfg = load_config(overrides={"picamera2": {"main_size": [1332, 990], "lores_size": [640, 480]}})
    with open_source("picamera2", cfg) as src:
        frame = src.read()
        cam = fake.Picamera2.instances[0]
        assert cam.started
        assert cam.config["lores"]["format"] == "YUV420" and cam.config["lores"]["size"] == (640, 480)
        assert frame.grey.shape == (480, 640)          # the Y plane only, not h*1.5 rows
        assert frame.color.shape == (990, 1332, 3)     # main stream for display and capture
        yuv = cv2.cvtColor(cv2.resize(photo_bgr, (640, 480), interpolation=cv2.INTER_AREA),
                           cv2.COLOR_BGR2YUV_I420)
        np.testing.assert_array_equal(frame.grey, yuv[:480])
        assert cam.released == 1                        # every request goes back to the camera
    assert cam.closed and not cam.started


def test_picamera2_capture_failure_is_a_source_error(monkeypatch, photo_bgr):
    fake = fake_picamera2.install(monkeypatch, photo_bgr)
    with open_source("picamera2") as src:
        fake.Picamera2.instances[0].fail_next = 1
        with pytest.raises(SourceError):
            src.read()
        assert src.read() is not None


def test_auto_picks_picamera2_when_a_camera_is_attached(monkeypatch, photo_bgr):
    fake_picamera2.install(monkeypatch, photo_bgr)
    with open_source("auto") as src:
        assert src.name == "picamera2"


def test_auto_falls_back_to_sim_without_a_camera(monkeypatch, photo_bgr, caplog):
    fake_picamera2.install(monkeypatch, photo_bgr, cameras=[])
    caplog.set_level("INFO")
    with open_source("auto") as src:
        assert src.name.startswith("sim")
    assert "no camera attached" in caplog.text and "sim" in caplog.text


def test_auto_falls_back_to_sim_when_picamera2_is_missing(monkeypatch, caplog):
    import sys
    monkeypatch.setitem(sys.modules, "picamera2", None)   # import fails
    caplog.set_level("INFO")
    with open_source("auto") as src:
        assert src.name.startswith("sim")
    assert "not importable" in caplog.text
