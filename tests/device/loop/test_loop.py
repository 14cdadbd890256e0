import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from device.config import ServiceConfig
from device.errors import SourceError
from device.loop.frame_loop import Loop, LoopStats
from device.loop.sink import Sink
from device.app.runner import RunOptions, Runner
from device.scoring.classic import ClassicScorer
from device.sources.base import Frame, FrameSource
from tests.conftest import REPO
from tests.device.results import result


class ListSource(FrameSource):
    """A scripted source: frames, exceptions (raised) or None (no frame)."""

    def __init__(self, script, live=True):
        super().__init__()
        self.script = list(script)
        self.live = live
        self.name = "list"

    def _read(self):
        if not self.script:
            return None
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        if item is None:
            return None
        return Frame(grey=item, timestamp=time.monotonic(), index=self._next_index())


class Recorder(Sink):
    def __init__(self):
        self.frames, self.faults, self.closed_times = [], [], 0

    def on_frame(self, frame, result):
        self.frames.append(result.frame)

    def on_fault(self, error):
        self.faults.append(error)

    def stats(self):
        return {"recorder": len(self.frames)}

    def _close(self):
        self.closed_times += 1


FAST = ServiceConfig(max_source_failures=3, retry_backoff_s=0.01, retry_backoff_max_s=0.02)


def test_loop_scores_every_frame_of_a_file_source(photo_grey):
    rec = Recorder()
    loop = Loop(ListSource([photo_grey] * 5, live=False), ClassicScorer(), [rec])
    stats = loop.run()
    assert rec.frames == [0, 1, 2, 3, 4] and stats.frames == 5
    loop.close(); loop.close()
    assert rec.closed_times == 1               # close is idempotent
    assert loop.sink_stats() == {"recorder": 5}


def test_camera_faults_are_retried_then_the_loop_carries_on(photo_grey):
    rec = Recorder()
    script = [photo_grey, RuntimeError("dequeue timeout"), None, photo_grey, photo_grey]
    loop = Loop(ListSource(script), ClassicScorer(), [rec], max_frames=3, faults=FAST)
    stats = loop.run()
    assert stats.frames == 3 and stats.faults == 2
    assert len(rec.faults) == 2 and "dequeue timeout" in rec.faults[0]


def test_too_many_consecutive_faults_raise_source_error(photo_grey):
    script = [photo_grey] + [RuntimeError("gone")] * 5
    loop = Loop(ListSource(script), ClassicScorer(), [], faults=FAST)
    with pytest.raises(SourceError, match="3 consecutive faults"):
        loop.run()


def test_stop_ends_the_loop_from_another_thread():
    loop = Loop(__import__("device.sources.sim", fromlist=["x"]).SimCamera(), ClassicScorer(), [])
    t = threading.Thread(target=loop.run)
    t.start()
    end = time.monotonic() + 30
    while loop.stats.frames < 3 and time.monotonic() < end:
        time.sleep(0.01)
    loop.stop()
    t.join(2)
    assert not t.is_alive() and loop.stats.frames > 0
    loop.close()


def test_bad_config_on_reload_keeps_the_old_config(tmp_path, caplog):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[source]\nspec = "sim"\n[scoring]\nroi = [10, 10, 100, 100]\n')
    runner = Runner(RunOptions(config_path=str(cfg), frames=1))
    try:
        runner.loop.run()     # a reload is checked against the newest frame
        cfg.write_text('[scoring]\nroi = [20, 20, 50, 50]\n')
        runner.reload()
        assert runner.cfg.scoring.roi == (20, 20, 50, 50)
        cfg.write_text('[scoring]\nroi = "nonsense"\n')
        runner.reload()
        assert "keeping the old config" in caplog.text
        assert runner.cfg.scoring.roi == (20, 20, 50, 50)
    finally:
        runner.loop.close()


def _start(*args):
    return subprocess.Popen([sys.executable, "-m", "device", "run", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_running(p, timeout=60.0):
    """Block until the process logs "running on" (its signal handlers are in place then):
    on a loaded machine, start-up alone can take longer than a fixed sleep."""
    seen = threading.Event()

    def read():
        for line in p.stderr:
            if "running on" in line:
                seen.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert seen.wait(timeout), "the service never reported running"


def test_sigterm_stops_within_two_seconds_and_exits_0():
    p = _start("--source", "sim", "--stats")
    _wait_running(p)
    time.sleep(1)
    t = time.monotonic()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    assert time.monotonic() - t < 2.0
    assert p.returncode == 0, err
    assert '"frames"' in out.splitlines()[-1]


def test_sigterm_stops_even_when_the_camera_hangs():
    p = _start("--source", "sim:hang_after=5")
    _wait_running(p)
    time.sleep(1)
    t = time.monotonic()
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=10)
    assert time.monotonic() - t < 2.0 and p.returncode == 0


def test_a_failing_camera_exits_non_zero_after_retries(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[service]\nmax_source_failures = 2\nretry_backoff_s = 0.05\nretry_backoff_max_s = 0.1\n")
    p = _start("--source", "sim:fail_after=3", "--config", str(cfg))
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1
    assert "giving up after 2 consecutive faults" in err and "Traceback" not in err


class EndlessSource(FrameSource):
    def __init__(self):
        super().__init__()
        self.live, self.name = True, "endless"
        self.grey = np.zeros((8, 8), np.uint8)

    def _read(self):
        return Frame(grey=self.grey, timestamp=0.0, index=self._next_index())


class ConstantScorer:
    def score(self, frame):
        return result(1.0, frame=frame.index)

    def set_roi(self, roi):
        pass

    def close(self):
        pass


def test_loop_stats_stay_the_same_size_however_long_the_loop_runs():
    n = LoopStats.MAX_SAMPLES * 3
    loop = Loop(EndlessSource(), ConstantScorer(), max_frames=n)
    size = loop.stats.proc_ms.nbytes
    loop.run()
    assert loop.stats.frames == n
    assert loop.stats.proc_ms.nbytes == size and loop.stats.samples == LoopStats.MAX_SAMPLES


def test_loop_stats_percentiles_sample_the_whole_run():
    stats = LoopStats()
    n = 40_000
    for i in range(n):
        stats.add(float(i), i / 30)
    # A uniform sample of 0..n-1: the median is near n/2 (keeping only the first
    # MAX_SAMPLES times would give about 2,000).
    assert abs(stats.summary()["ms_per_frame_p50"] - n / 2) < 0.05 * n
    assert stats.fps == pytest.approx(30)
