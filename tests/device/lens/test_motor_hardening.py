"""Issue 19 part B, the motor's inputs: a damaged position file and the servo's reason."""
import logging
import os

import pytest

pytest.importorskip("gpiozero")
from gpiozero.pins.mock import MockFactory  # noqa: E402

from device.cli import main  # noqa: E402
from device.config import MotorConfig  # noqa: E402
from device.errors import MotorError  # noqa: E402
from device.lens.motor import open_motor  # noqa: E402
from device.lens.motor.store import PositionStore  # noqa: E402
from tests.device.lens.test_motor_cli import mock_gpio, write_config  # noqa: E402,F401

DAMAGED = {
    "non_utf8": b"\xff\xfe",
    "nested": b"[" * 100_000,
    "list": b"[]",
    "number": b"5",
    "huge_position": b'{"position": 1e999}',
    "truncated": b'{"position": 12',
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_f12_a_damaged_position_file_is_set_aside_and_the_motor_asks_to_be_homed(
        tmp_path, caplog, name):
    path = tmp_path / "motor-position.json"
    path.write_bytes(DAMAGED[name])
    cfg = MotorConfig(driver="stepdir", step_pin=17, dir_pin=27, enable_pin=22)
    factory = MockFactory()
    with caplog.at_level(logging.WARNING):
        motor = open_motor(cfg, pin_factory=factory, store=PositionStore(path), threaded=False)
    try:
        assert motor.position == cfg.min_position
        assert "was damaged" in caplog.text and "motor home" in caplog.text
        aside = [p for p in tmp_path.iterdir() if p.name.startswith("motor-position.json.damaged-")]
        assert len(aside) == 1 and aside[0].read_bytes() == DAMAGED[name] and not path.exists()
    finally:
        motor.close()
        factory.close()


def test_f12_f15_a_fifo_as_position_file_is_set_aside_without_blocking(tmp_path):
    path = tmp_path / "motor-position.json"
    os.mkfifo(path)
    assert PositionStore(path).load() is None
    assert not path.exists()


def test_f12_motor_status_with_a_non_utf8_position_file_exits_0(mock_gpio, tmp_path, capsys):
    cfg = write_config(tmp_path)
    (tmp_path / "pos.json").write_bytes(b"\xff\xfe")
    assert main(["motor", "--config", cfg, "status"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_f36_servo_on_mock_pins_without_pwm_names_the_reason(tmp_path):
    cfg = MotorConfig(driver="servo", servo_pin=18)
    factory = MockFactory()    # plain MockPin: no PWM
    try:
        with pytest.raises(MotorError) as err:
            open_motor(cfg, pin_factory=factory, store=PositionStore(tmp_path / "p.json"))
        msg = str(err.value)
        assert msg.startswith("cannot open the servo pin 18: PinPWMUnsupported")
        assert "GPIOZERO_MOCK_PIN_CLASS=mockpwmpin" in msg
    finally:
        factory.close()
