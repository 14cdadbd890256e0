"""What building a motor loads: gpiozero (and with it importlib.metadata, email and its
~4 MB of modules) only for a hardware driver, and OpenSSL for none of them."""
import subprocess
import sys

import pytest

from tests.conftest import REPO

CHILD = r"""
import sys
from dataclasses import replace
import device.cli
from device.config import MotorConfig
from device.lens.motor import open_motor
from device.lens.motor.store import PositionStore
cfg = replace(MotorConfig(), driver=sys.argv[1], step_pin=17, dir_pin=27)
kw = dict(threaded=False)         # stepped on a simulated clock below
if cfg.driver != "sim":
    from gpiozero.pins.mock import MockFactory
    kw.update(pin_factory=MockFactory(), store=PositionStore(sys.argv[2]))
with open_motor(cfg, **kw) as motor:
    motor.move_to(40)
    for _ in range(1000):
        if not motor.busy:
            break
        motor.advance(0.01)
    assert motor.position == 40, motor.position
print(" ".join(sorted(sys.modules)))
"""

HEAVY = {"gpiozero", "importlib.metadata", "importlib_metadata", "email", "_hashlib", "ssl"}

# What numpy and OpenCV load by themselves is not the motor's doing: numpy 1.x's random
# module imports `secrets`, and with it hashlib and OpenSSL (the Pi's apt stack).
BASELINE = "import sys, numpy, numpy.random, cv2; print(' '.join(sorted(sys.modules)))"


def _modules(*args) -> set:
    p = subprocess.run([sys.executable, "-c", *args], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return set(p.stdout.split())


def loaded_by(driver: str, tmp_path) -> set:
    """The modules building and moving the motor loads beyond numpy's and OpenCV's own."""
    return _modules(CHILD, driver, str(tmp_path / "motor.json")) - _modules(BASELINE)


def test_the_sim_motor_loads_no_gpio_stack_and_no_openssl(tmp_path):
    loaded = loaded_by("sim", tmp_path)
    assert "device.lens.motor.sim" in loaded            # it did build and move the motor
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


def test_a_hardware_driver_loads_gpiozero_but_not_openssl(tmp_path):
    pytest.importorskip("gpiozero")
    loaded = loaded_by("stepdir", tmp_path)
    assert "gpiozero" in loaded                          # the check sees what is imported
    assert not loaded & {"_hashlib", "ssl"}, sorted(loaded & {"_hashlib", "ssl"})
