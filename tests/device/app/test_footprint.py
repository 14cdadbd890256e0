"""What a run loads: the device's import graph stays free of desktop-only packages."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.conftest import REPO, loaded_by_numpy_and_opencv

# Training, plotting and notebook stacks: megabytes of RSS each on a 512 MB Pi, and none
# is installed there.
DESKTOP_ONLY = ("tensorflow", "keras", "matplotlib", "skimage", "scipy", "sklearn", "pandas",
                "torch", "PIL", "IPython")

CHILD = r"""
import sys
import device.cli as cli
from device.app.wiring import build_app
from device.config import load_config
from device.loop.frame_loop import Loop
from device.sources import open_source
args = cli.build_parser().parse_args(["run", "--config", sys.argv[1], *sys.argv[2:]])
cfg = load_config(args.config, cli.run_overrides(args))
source = open_source(cfg.source.spec, cfg)
pins = None
if "--motor" in sys.argv:   # a run without GPIO must not get gpiozero from the test itself
    from gpiozero.pins.mock import MockFactory
    pins = MockFactory()
app = build_app(cfg, source, headless=True, pin_factory=pins)
loop = Loop(source, app.scorer, app.sinks, max_frames=6, faults=cfg.service)
loop.run()
loop.close()
app.close()
assert loop.stats.frames == 6, loop.stats.frames
print(" ".join(sorted(sys.modules)))
"""


def _loaded(tmp_path, photo_bgr, *flags) -> set:
    """Every module a 6-frame run on a video of a real photo loaded (full dotted names)."""
    video = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for i in range(6):     # a real photo going in and out of focus
        vw.write(cv2.GaussianBlur(cv2.resize(photo_bgr, (320, 240)), (0, 0), 0.5 + abs(i - 3)))
    vw.release()
    (tmp_path / "state").mkdir()
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG.format(tmp=tmp_path))
    p = subprocess.run([sys.executable, "-c", CHILD, str(cfg), "--source", f"video:{video}", *flags],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return set(p.stdout.split())


CONFIG = """
[defects]
live = true
detector = "net"
map_file = "{tmp}/state/defects.json"
[models]
enable_focus = true
enable_defects = true
num_threads = 1
[service]
state_dir = "{tmp}/state"
[log]
jsonl = "{tmp}/frames.jsonl"
[motor]
step_pin = 17
dir_pin = 27
position_file = "{tmp}/state/motor.json"
"""


def test_a_run_with_every_feature_never_imports_desktop_packages(tmp_path, photo_bgr):
    mods = _loaded(tmp_path, photo_bgr, "--heatmap", "--zoom", "--capture-when-sharp",
                   "--capture-dir", str(tmp_path / "captures"), "--web", "127.0.0.1:0",
                   "--motor", "stepdir", "--autofocus", "continuous")
    loaded = {m.split(".")[0] for m in mods}
    assert {"device", "cv2", "numpy", "gpiozero", "http"} <= loaded    # it did build and run the app
    assert not loaded & set(DESKTOP_ONLY), sorted(loaded & set(DESKTOP_ONLY))
    # The web server never loads ssl (http.client's HTTPS), nor the idna codec of a
    # reverse DNS lookup, nor OpenSSL's libcrypto through hashlib/hmac (device.common.digest);
    # a video run never loads the simulator, and the optics analysis waits for a completed
    # pass (docs/performance.md).
    never = {"ssl", "_ssl", "_hashlib", "encodings.idna", "device.sources.sim",
             "device.optics.inspect"}
    if int(np.__version__.split(".")[0]) >= 2:    # numpy 1.x imports numpy.ma itself
        never.add("numpy.ma")
    never -= loaded_by_numpy_and_opencv(never)      # numpy 1.x: hashlib via numpy.random
    assert "device.optics.live" in mods
    assert not mods & never, sorted(mods & never)


def test_a_run_without_motor_or_button_never_imports_gpiozero(tmp_path, photo_bgr):
    mods = _loaded(tmp_path, photo_bgr, "--heatmap", "--web", "127.0.0.1:0")
    assert {"device.viewfinder.web.server", "device.defects.live"} <= mods   # a real run
    assert not {m for m in mods if m.split(".")[0] in ("gpiozero", "colorzero", "ssl", "_ssl")}


def test_the_server_hides_ssl_only_while_http_server_is_imported():
    code = r"""
import sys
import device.viewfinder.web.handler
assert "ssl" not in sys.modules, "ssl loaded"
import ssl, http.client          # a later import gets the real ssl
assert ssl.PROTOCOL_TLS_CLIENT and not hasattr(http.client, "HTTPSConnection")
print("ok")
"""
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]
    # ssl loaded first (e.g. by another library): http.client keeps its HTTPS class.
    p = subprocess.run([sys.executable, "-c", "import ssl, http.client, device.viewfinder.web.handler; "
                        "print(hasattr(http.client, 'HTTPSConnection'))"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "True", p.stderr[-2000:]


def test_the_check_sees_a_desktop_package_when_one_is_imported():
    p = subprocess.run([sys.executable, "-c", "import device.cli, skimage, sys; "
                        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        pytest.skip("scikit-image not installed")
    assert "skimage" in set(p.stdout.split())


def test_malloc_tuning_applies_on_glibc_and_leaves_the_users_settings_alone():
    code = r"""
import json, os
from device.common.malloc import tune_malloc
print(json.dumps([tune_malloc({}), tune_malloc({"MALLOC_ARENA_MAX": "4"})]))
"""
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    import json

    free, user = json.loads(p.stdout)
    import platform

    if platform.libc_ver()[0] != "glibc":
        assert free == {} and user == {}
        return
    assert free == {"MALLOC_MMAP_THRESHOLD_": 131072, "MALLOC_TRIM_THRESHOLD_": 262144,
                    "MALLOC_ARENA_MAX": 2}
    assert "MALLOC_ARENA_MAX" not in user and "MALLOC_MMAP_THRESHOLD_" in user

