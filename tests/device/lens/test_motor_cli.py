"""``focus-assist motor``: one line and exit 2 on bad input; the position persists;
SIGTERM mid-move still saves the position and de-energises the driver."""
from __future__ import annotations

import json
import os
import signal
import threading

import pytest

pytest.importorskip("gpiozero")

from device.cli import main  # noqa: E402


@pytest.fixture
def mock_gpio(monkeypatch):
    """gpiozero's default pin factory as the mock (what the CLI gets on a PC in CI)."""
    from gpiozero import Device

    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    # Plain MockPin: letting go of it leaves the last level driven (MockPWMPin zeroes it).
    monkeypatch.setenv("GPIOZERO_MOCK_PIN_CLASS", "mockpin")
    old = Device.pin_factory
    Device.pin_factory = None
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.reset()
        Device.pin_factory.close()
    Device.pin_factory = old


def write_config(tmp_path, **motor) -> str:
    keys = dict(driver="stepdir", step_pin=17, dir_pin=27, enable_pin=22,
                position_file=str(tmp_path / "pos.json"), speed=4000.0, acceleration=0.0)
    keys.update(motor)
    lines = ["[motor]"] + [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    path = tmp_path / "focus.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def saved(tmp_path) -> dict:
    return json.loads((tmp_path / "pos.json").read_text())


def test_goto_jog_zero_persist(mock_gpio, tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["motor", "--config", cfg, "zero"]) == 0
    assert saved(tmp_path)["position"] == 0
    assert main(["motor", "--config", cfg, "goto", "120"]) == 0
    assert saved(tmp_path) ["position"] == 120
    assert main(["motor", "--config", cfg, "jog", "-20"]) == 0        # a negative jog parses
    assert saved(tmp_path)["position"] == 100 and not saved(tmp_path)["moving"]
    assert main(["motor", "--config", cfg, "--json", "status"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(out)["position"] == 100


@pytest.mark.parametrize("argv,needle", [
    (["goto", "5000"], "soft limits"),
    (["jog", "-1"], "soft limits"),
    (["goto", "ten"], "whole number"),
])
def test_bad_input_is_one_line_and_exit_2(mock_gpio, tmp_path, capsys, argv, needle):
    cfg = write_config(tmp_path)
    assert main(["motor", "--config", cfg, "zero"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:   # argparse errors exit; ours return 2
        code = main(["motor", "--config", cfg] + argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


def test_unknown_config_key_is_named(mock_gpio, tmp_path, capsys):
    cfg = write_config(tmp_path, step_pinn=4)
    assert main(["motor", "--config", cfg, "status"]) == 2
    assert "motor.step_pinn" in capsys.readouterr().err


def test_home_needs_a_switch_or_explicit_travel_for_stepdir(mock_gpio, tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["motor", "--config", cfg, "home"]) == 2
    assert "home_pin" in capsys.readouterr().err


def test_home_against_the_stop(mock_gpio, tmp_path):
    cfg = write_config(tmp_path, home_travel=300, max_position=200)
    assert main(["motor", "--config", cfg, "zero", "150"]) == 0
    assert main(["motor", "--config", cfg, "home"]) == 0
    assert saved(tmp_path)["position"] == 0


def test_sigterm_mid_move_saves_and_de_energises(mock_gpio, tmp_path):
    from gpiozero import Device

    cfg = write_config(tmp_path, speed=200.0, max_position=5000)
    assert main(["motor", "--config", cfg, "zero"]) == 0
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(SystemExit) as exc:
            main(["motor", "--config", cfg, "goto", "4000"])   # 20 s at 200 steps/s
    finally:
        timer.cancel()
    assert exc.value.code == 143
    pos = saved(tmp_path)
    assert 0 < pos["position"] < 4000 and not pos["moving"]
    en = Device.pin_factory.pin(22)
    # EN is active low: enabled (low) to move, then driven high (disabled) on the way out.
    assert [bool(s.state) for s in en.states][-2:] == [False, True]
