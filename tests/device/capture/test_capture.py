"""Capture-when-sharp: when it fires, what it saves, and that it never loses or corrupts data."""
import json
import logging
import os
import subprocess
import sys
import time
import weakref
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO, pcb_sweep_paths, shared_data
from tests.sweep_truth import BOARD_TEXT, HEATSINK_TOP, SWITCH_TOP, USB_TEXT
from device.capture.sink import CaptureSink, ensure_writable_dir, remove_stale_temps
from device.common.atomic import is_temp_name
from device.config import CaptureConfig, ScoringConfig, SimConfig, load_config
from device.errors import InputError
from tests.device.results import result, verdict
from device.scoring.classic import ClassicScorer
from device.sources.base import Frame, FrameSource

SCALE = 2            # half size for speed; the capture frames are the same at full size


class HeldImages(FrameSource):
    """Each image yielded ``hold`` times, as a video of a hand-turned lens would show it."""
    live = False
    name = "held-images"

    def __init__(self, images, hold=5, fps=30.0):
        super().__init__()
        self.images, self.hold, self.fps = images, hold, fps

    def _read(self):
        i = self._index
        if i >= len(self.images) * self.hold:
            return None
        img = self.images[i // self.hold]
        return Frame(grey=cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), color=img, timestamp=i / self.fps,
                     index=self._next_index())


def cfg(**kw):
    base = dict(enabled=True, min_free_mb=0.0, cooldown_s=0.0)
    base.update(kw)
    return CaptureConfig(**base)


def run(sink, source, scorer):
    with sink:
        for frame in source:
            sink.on_frame(frame, scorer.score(frame))


def sidecars(folder):
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]


@pytest.fixture(scope="module")
def sweep_images():
    imgs = [cv2.imread(str(p)) for p in pcb_sweep_paths()]
    return [cv2.resize(m, (m.shape[1] // SCALE, m.shape[0] // SCALE), interpolation=cv2.INTER_AREA)
            for m in imgs]


def test_real_sweep_captures_only_at_the_sharp_frames_once_per_pass(sweep_images, tmp_path):
    # Forward through focus, then back again: two passes, each held 5 frames per image.
    images = sweep_images + sweep_images[::-1]
    order = list(range(10)) + list(range(9, -1, -1))
    src = HeldImages(images)
    scorer = ClassicScorer(ScoringConfig(roi=tuple(v // SCALE for v in SWITCH_TOP.roi)))
    run(CaptureSink(cfg(), tmp_path, source_name=src.name), src, scorer)
    metas = sidecars(tmp_path)
    assert metas, "no capture on a real pass through focus"
    sweep_ids = [order[m["frame_index"] // 5] for m in metas]
    assert all(s in SWITCH_TOP.good for s in sweep_ids), sweep_ids
    passes = [m["frame_index"] // 50 for m in metas]
    assert passes.count(0) <= 1 and passes.count(1) <= 1, passes
    # Each sidecar describes a complete image with the same stem.
    for m in metas:
        img = tmp_path / m["image"]
        assert img.stem == Path(m["image"]).stem and (tmp_path / f"{img.stem}.json").exists()
        assert cv2.imread(str(img)) is not None
        assert m["roi"] == [v // SCALE for v in SWITCH_TOP.roi]
        assert m["scores"]["focus"] > 0 and "measures" in m["scores"]
        assert m["settings"]["fire_ratio"] == 0.8 and m["trigger"] == "trap"


@pytest.mark.parametrize("region", [SWITCH_TOP, BOARD_TEXT, HEATSINK_TOP, USB_TEXT], ids=lambda r: r.name)
def test_real_sweeps_with_the_focus_net_capture_once_per_pass_at_the_judged_frames(region, tmp_path):
    """The shipped net and the curve together, on real sweeps played forward and back at
    5 frames per lens position: the net must not veto the real peaks, and a glitch frame
    on the way up (the USB sweep's frames 10 and 20) must not pass for a peak."""
    from device.config import load_config
    from device.scoring.focus_net import scorer_from_config

    folder = shared_data(region.sweep)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    imgs = [cv2.imread(str(p)) for p in paths]
    imgs = [cv2.resize(m, (m.shape[1] // SCALE, m.shape[0] // SCALE), interpolation=cv2.INTER_AREA)
            for m in imgs]
    n = len(imgs)
    order = list(range(n)) + list(range(n - 1, -1, -1))
    roi = [v // SCALE for v in region.roi]
    c = load_config(overrides={"scoring": {"roi": roi}, "models": {"num_threads": 1}})
    scorer = scorer_from_config(c, ClassicScorer(c.scoring))
    src = HeldImages([imgs[i] for i in order])
    run(CaptureSink(cfg(), tmp_path, source_name=src.name), src, scorer)
    metas = sidecars(tmp_path)
    shown = [order[m["frame_index"] // 5] for m in metas]
    passes = sorted(m["frame_index"] // (5 * n) for m in metas)
    assert passes == [0, 1], (shown, [m["peak"]["decision"] for m in metas])
    assert all(i in region.good for i in shown), shown
    assert all(m["cnn"] and m["peak"]["decision"]["capture"] for m in metas)


def sim_sweep(seed=4, steps=60):
    """A simulated lens turned by hand from one end to the other."""
    from device.sources.sim import SimCamera

    cam = SimCamera(SimConfig(width=320, height=240, seed=seed, best_position=500, start_position=0))
    positions = np.linspace(0, 1000, steps)
    return cam, positions


def test_sim_lens_turned_by_hand_is_captured_in_focus_with_its_lens_position(tmp_path, caplog):
    cam, positions = sim_sweep()
    scorer = ClassicScorer()
    caplog.set_level(logging.INFO, logger="device.capture.sink")
    with CaptureSink(cfg(), tmp_path, source_name=cam.name, lens_position=lambda: cam.lens_position) as sink:
        for pos in positions:
            cam.lens_position = pos
            f = cam.read()
            sink.on_frame(f, scorer.score(f))
    assert "no focus CNN" in caplog.text      # the classic rule alone decides, and says so
    metas = sidecars(tmp_path)
    assert len(metas) == 1
    m = metas[0]
    # The frame is exposed at the previous read's position: allow one step of 17 units.
    assert abs(m["lens_position"] - 500) <= 40, m["lens_position"]
    assert m["frame_index"] >= 0 and isinstance(m["timestamp"], float)
    assert m["cnn"] is False and m["width"] == 320 and len(m["sha256"]) == 64


def fake_results(values, prob):
    """Frames with given focus values, each with a CNN verdict of p(sharp) ``prob``."""
    img = np.zeros((64, 64, 3), np.uint8)
    for i, v in enumerate(values):
        f = Frame(grey=img[..., 0], color=img, timestamp=float(i), index=i)
        yield f, result(float(v), frame=i, timestamp=float(i), cnn=verdict(prob))


# Each ends with enough low frames to confirm the peak (capture.confirm_frames).
BUMP = [10, 10, 20, 50, 90, 100, 90, 50, 20, 10, 10] + [10] * 8


WEAK_BUMP = [30, 30, 32, 80, 100, 80, 32, 30, 30] + [30] * 8     # through the trap, under a 3x rise


def test_a_confident_net_vetoes_only_a_weak_peak(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    with CaptureSink(cfg(), a) as sink:              # the net is sure it is blurred
        for f, r in fake_results(WEAK_BUMP, 0.05):
            sink.on_frame(f, r)
    assert list(a.iterdir()) == []
    assert sink.counts["not_sharp"] == 1 and sink.counts["by_net_veto"] == 1
    with CaptureSink(cfg(), b) as sink:              # ... but a 10x rise through focus wins
        for f, r in fake_results(BUMP, 0.05):
            sink.on_frame(f, r)
    (m,) = sidecars(b)
    assert m["frame_index"] == 5 and m["peak"]["decision"]["decided_by"] == "curve_over_net"
    assert m["peak"]["decision"]["rise"] >= 4 and m["scores"]["sharp_prob"] == 0.05
    with CaptureSink(cfg(), c) as sink:              # a net that agrees is noted
        for f, r in fake_results(WEAK_BUMP, 0.9):
            sink.on_frame(f, r)
    (m,) = sidecars(c)
    assert m["frame_index"] == 4 and m["peak"]["decision"]["decided_by"] == "curve_and_net"


def test_cooldown_burst_and_cap(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    with CaptureSink(cfg(cooldown_s=100.0), a) as sink:   # second pass within the cooldown
        for f, r in fake_results(BUMP * 2, 0.9):
            sink.on_frame(f, r)
    assert len(sidecars(a)) == 1 and sink.counts["cooldown"] == 1
    with CaptureSink(cfg(burst=3), b) as sink:
        for f, r in fake_results(BUMP, 0.9):
            sink.on_frame(f, r)
    assert sorted(m["frame_index"] for m in sidecars(b)) == [4, 5, 6]
    with CaptureSink(cfg(max_files=1), c) as sink:
        for f, r in fake_results(BUMP * 3, 0.9):
            sink.on_frame(f, r)
    assert len(sidecars(c)) == 1 and sink.counts["cap"] == 2


def test_low_disk_pauses_and_resumes(tmp_path, caplog):
    free = {"bytes": 10_000_000}
    caplog.set_level(logging.INFO, logger="device.capture.sink")
    sink = CaptureSink(cfg(min_free_mb=50.0), tmp_path, free_bytes=lambda p: free["bytes"])
    with sink:
        for f, r in fake_results(BUMP, 0.9):
            sink.on_frame(f, r)
        st = sink.stats()["capture"]
        assert st["low_disk"] is True and st["skipped"]["low_disk"] == 1
        assert "capturing paused" in caplog.text
        free["bytes"] = 10_000_000_000
        sink._disk_checked = 0.0
        for f, r in fake_results(BUMP, 0.9):
            sink.on_frame(f, r)
    assert sink.stats()["capture"]["low_disk"] is False and "resumed" in caplog.text
    assert len(sidecars(tmp_path)) == 1


def test_existing_files_are_never_overwritten(tmp_path):
    # Occupy every name the capture could take first, with content that must survive.
    with CaptureSink(cfg(), tmp_path) as sink:
        for f, r in fake_results(BUMP, 0.9):
            sink.on_frame(f, r)
    (first,) = sidecars(tmp_path)
    img = tmp_path / first["image"]
    original = img.read_bytes()
    with CaptureSink(cfg(), tmp_path) as sink:   # same frame index, same second: same stem
        for f, r in fake_results(BUMP, 0.9):
            sink.on_frame(f, r)
    assert img.read_bytes() == original
    assert len(list(tmp_path.glob("*.jpg"))) == len(list(tmp_path.glob("*.json"))) == 2


def test_capture_now_saves_the_latest_frame(tmp_path):
    sink = CaptureSink(CaptureConfig(enabled=False, min_free_mb=0), tmp_path / "manual")
    with sink:
        assert sink.capture_now()["ok"] is False       # no frame yet
        for f, r in fake_results([5, 6, 7], 0.9):
            sink.on_frame(f, r)
        assert sink.capture_now()["ok"] is True
    (m,) = sidecars(tmp_path / "manual")
    assert m["trigger"] == "manual" and m["frame_index"] == 2 and "-manual" in m["image"]


def _until(cond, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    return cond()


def test_the_writer_lets_go_of_a_saved_frame(tmp_path, photo_bgr):
    """Once saved, a capture's frame is not kept alive by the idle writer thread (a frame
    and its result, 1.8 MB at 640x480, for the rest of the run)."""
    with CaptureSink(CaptureConfig(enabled=False, min_free_mb=0), tmp_path) as sink:
        img = photo_bgr.copy()
        alive = weakref.ref(img)
        sink.on_frame(Frame(grey=img[..., 1], color=img, timestamp=0.0, index=0), result(1.0))
        del img
        assert sink.capture_now()["ok"] is True
        assert _until(lambda: sink.counts["captures"] == 1)
        nxt = photo_bgr.copy()                   # the next frame is the shutter's now
        sink.on_frame(Frame(grey=nxt[..., 1], color=nxt, timestamp=1.0, index=1), result(1.0, frame=1))
        assert _until(lambda: alive() is None), "the writer still holds the saved frame"
    assert len(sidecars(tmp_path)) == 1


def test_the_trap_keeps_its_best_frame_without_the_scorers_working_images(sweep_images, tmp_path):
    """The best frame of a peak may wait many frames in the trap: its result goes there
    without the working image and gradient energy (0.6 MB at 640x480)."""
    scorer = ClassicScorer(ScoringConfig())
    alive = []
    with CaptureSink(cfg(), tmp_path) as sink:
        for i, img in enumerate(sweep_images):      # the real board sweep, through focus
            img = cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA)    # lores-sized
            f = Frame(grey=cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), color=img, timestamp=float(i), index=i)
            r = scorer.score(f)
            assert r.working is not None
            alive.append(weakref.ref(r.working.energy))
            sink.on_frame(f, r)
        del f, r, img
        assert sink.trap.state == "peak" and sink.counts["peaks"] == 0   # its best frame held
        assert [i for i, a in enumerate(alive[:-1]) if a() is not None] == []
    assert [i for i, a in enumerate(alive[:-1]) if a() is not None] == []


def test_unwritable_capture_dir_is_a_clear_startup_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create"):
        ensure_writable_dir(blocker / "captures")
    r = subprocess.run([sys.executable, "-m", "device", "run", "--source", "sim", "--frames", "1",
                        "--headless", "--capture-when-sharp", "--capture-dir", str(blocker / "c")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    err = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(err) == 1 and "capture dir" in err[0] and "Traceback" not in r.stderr


def test_config_rejects_bad_capture_settings():
    from device.errors import ConfigError

    with pytest.raises(ConfigError):
        load_config(overrides={"capture": {"format": "gif"}})
    with pytest.raises(ConfigError):
        load_config(overrides={"capture": {"fire_ratio": 0.5, "rearm_ratio": 0.6}})
    with pytest.raises(ConfigError):
        load_config(overrides={"capture": {"typo": 1}})


@pytest.mark.parametrize("mode,ext", [("dng", ".dng"), ("still", ".jpg")])
def test_pi_still_and_dng_are_written_through_a_temporary_name(tmp_path, monkeypatch, photo_bgr, mode, ext):
    from device.config import PicameraConfig
    from device.sources.picam import Picamera2Source
    from tests.device import fake_picamera2

    fake_picamera2.install(monkeypatch, photo_bgr)
    src = Picamera2Source(PicameraConfig(main_size=(640, 480), lores_size=(320, 240)))
    with CaptureSink(cfg(pi_mode=mode, jpeg_quality=88), tmp_path, source_name=src.name,
                     still=src.capture_still) as sink:
        for f, r in fake_results(BUMP, 0.9):
            sink.on_frame(f, r)
    (m,) = sidecars(tmp_path)
    assert m["image"].endswith(ext) and (tmp_path / m["image"]).stat().st_size == m["bytes"]
    cam = src.picam2
    ((config, path, name),) = cam.mode_switches
    assert is_temp_name(Path(path).name)   # never the final name
    assert name == ("raw" if mode == "dng" else "main")
    assert (mode == "dng") == ("raw" in config)
    if mode == "still":
        assert cam.options["quality"] == 88
        assert cv2.imread(str(tmp_path / m["image"])).shape == photo_bgr.shape
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    src.close()


WRITER = r"""
import sys, numpy as np, cv2
from device.capture.sink import CaptureWriter, encode_image
out = sys.argv[1]
rng = np.random.default_rng(0)
img = cv2.resize(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), (800, 600))
data = encode_image(img, "png")
w = CaptureWriter(out)
print("ready", flush=True)
i = 0
while True:
    w.write(ext=".png", frame_index=i, sidecar={"frame_index": i}, data=data)
    i += 1
"""


def _check_folder(folder: Path, checked=frozenset()):
    """Every visible file is complete: images decode in full, sidecars match their image."""
    visible = [p for p in folder.iterdir() if not p.name.startswith(".")]
    for p in visible:
        if p.name in checked:
            continue
        if p.suffix == ".png":
            assert p.with_suffix(".json").exists(), f"{p.name} has no sidecar"
            raw = p.read_bytes()
            assert raw.endswith(b"IEND\xaeB`\x82"), f"{p.name} is truncated"
            assert cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) is not None
        else:
            meta = json.loads(p.read_text())
            img = folder / meta["image"]
            if not img.exists():      # killed between the sidecar and its image (docs/capture.md)
                continue
            import hashlib

            assert hashlib.sha256(img.read_bytes()).hexdigest() == meta["sha256"]
    return visible


def test_kill_9_mid_write_never_leaves_a_partial_image_that_looks_complete(tmp_path):
    rng = np.random.default_rng(7)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    checked: set = set()
    for trial in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                                env=env, text=True)
        assert proc.stdout.readline().strip() == "ready"
        try:
            proc.wait(timeout=float(rng.uniform(0.02, 0.6)))
        except subprocess.TimeoutExpired:
            proc.kill()           # SIGKILL: no cleanup, no flush, mid-write
        proc.wait()
        proc.stdout.close()
        checked |= {p.name for p in _check_folder(tmp_path, checked)}
    assert checked, "the writer never completed a file: the trials proved nothing"
    # What a crash leaves is hidden and marked .tmp; a new capture run clears old ones.
    for p in tmp_path.iterdir():
        if p.name.startswith("."):
            os.utime(p, (1, 1))
    remove_stale_temps(tmp_path, "focus")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_lens_position_comes_from_the_motor_when_one_is_fitted(tmp_path):
    from device.config import MotorConfig
    from device.lens.motor import open_motor

    motor = open_motor(MotorConfig(driver="sim"), threaded=False)
    motor.set_position(321)
    with CaptureSink(cfg(), tmp_path, lens_position=lambda: motor.position) as sink:
        for f, r in fake_results(BUMP, 0.9):
            sink.on_frame(f, r)
    (m,) = sidecars(tmp_path)
    assert m["lens_position"] == 321.0 and sink.count == 1
    motor.close()
