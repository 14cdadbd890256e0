"""Issue 19 part B, config cases: every bad value is one ConfigError, exit 2, never a crash."""
import logging
import os

import pytest

from device.app.runner import RunOptions, Runner
from device.cli import main
from device.config import load_config
from device.errors import ConfigError


def write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_f8_non_utf8_config_is_one_line_at_startup(tmp_path, capsys):
    p = write(tmp_path, b"\xff\xfe[sim]\n")
    assert main(["run", "--headless", "--source", "sim", "--frames", "1", "--config", str(p)]) == 2
    line = one_error_line(capsys)
    assert "not UTF-8" in line and "0xff" in line and "offset 0" in line


def test_f8_non_utf8_config_on_reload_is_logged_and_the_old_config_kept(tmp_path, caplog):
    p = write(tmp_path, '[source]\nspec = "sim"\n[scoring]\nroi = [10, 10, 100, 100]\n')
    runner = Runner(RunOptions(config_path=str(p), frames=1))
    try:
        runner.loop.run()     # a reload is checked against the newest frame
        p.write_bytes(b"\xff\xfe[sim]\n")
        with caplog.at_level(logging.ERROR):
            runner.reload()
        assert "keeping the old config" in caplog.text and "not UTF-8" in caplog.text
        assert runner.cfg.scoring.roi == (10, 10, 100, 100)
    finally:
        runner.loop.close()


@pytest.mark.parametrize("text, key", [
    ("[sim]\nseed = -5\n", "sim.seed"),
    ("[sim]\nwidth = 20000\nheight = 20000\n", "sim.width"),
    ("[sim]\nwidth = 9999999999999999\n", "sim.width"),
    ("[sim]\nhot_pixels = 100000\n", "sim.hot_pixels"),
    ("[models]\nnum_threads = 100000\n", "models.num_threads"),
    ("[service]\nretry_backoff_s = 1e300\nretry_backoff_max_s = 1e300\n", "service.retry_backoff_s"),
    ("[source]\ntimeout_s = 1e12\n", "source.timeout_s"),
    ("[capture]\nhistory_frames = 100000000\n", "capture.history_frames"),
    ("[motor]\nmax_position = 100000000000000000\n", "motor.max_position"),
    ("[input]\nmax_image_pixels = 10\n", "input.max_image_pixels"),
])
def test_f17_absurd_sizes_are_refused_by_bounded_ranges(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + " must"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("args, key", [
    (["--source", "sim", "--seed", "-1"], "sim.seed"),
    (["--source", "sim:seed=-1"], "sim.seed"),
    (["--source", "sim:width=20000,height=20000"], "sim.width"),
    (["--source", "sim:width=99999999999999999999999"], "sim.width"),
])
def test_f17_bad_sim_values_on_the_command_line_exit_2_with_one_line(args, key, capsys):
    assert main(["run", "--headless", "--frames", "1", *args]) == 2
    assert f"{key} must lie in" in one_error_line(capsys)


def test_f17_a_config_symlinked_to_dev_zero_is_refused_without_reading_it(tmp_path):
    link = tmp_path / "zero.toml"
    os.symlink("/dev/zero", link)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(link)


def test_f17_f15_a_fifo_as_config_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(fifo)


def test_f17_an_oversized_or_deeply_nested_config_is_one_error(tmp_path):
    with pytest.raises(ConfigError, match="larger than"):
        load_config(write(tmp_path, "# x\n" * 300_000))
    with pytest.raises(ConfigError, match="nests too deeply|not valid TOML"):
        load_config(write(tmp_path, "a = " + "[" * 100_000 + "]" * 100_000 + "\n"))


@pytest.mark.parametrize("section, key", [
    ("sim", "fps"), ("sim", "max_blur_px"), ("sim", "exposure"), ("sim", "full_well"),
    ("sim", "breathing"), ("sim", "depth_of_field"), ("sim", "ring_speed"),
    ("capture", "cooldown_s"), ("service", "retry_backoff_s"), ("motor", "speed"),
    ("source", "timeout_s"), ("service", "retry_backoff_max_s"),
])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_f23_nan_and_inf_are_refused_by_the_one_finite_check(tmp_path, section, key, value):
    with pytest.raises(ConfigError, match=rf"{section}\.{key}: must be a finite number"):
        load_config(write(tmp_path, f"[{section}]\n{key} = {value}\n"))


@pytest.mark.parametrize("option", ["depth_of_field=nan", "ring_speed=nan", "fps=nan",
                                    "max_blur_px=inf"])
def test_f23_nan_sim_options_are_a_usage_error_not_a_camera_fault(option, capsys):
    # A camera fault exits 1, which systemd restarts forever; a config error is exit 2.
    assert main(["run", "--headless", "--frames", "3", "--source", f"sim:{option}"]) == 2
    assert "must be a finite number" in one_error_line(capsys)


@pytest.mark.parametrize("text", ['[capture]\nprefix = "a\\u0000b"\n',
                                  '[capture]\ndir = "/tmp/a\\u0000b"\n',
                                  '[service]\nstate_dir = "/tmp/\\u0000"\n'])
def test_f31_null_bytes_in_paths_and_prefixes_are_refused(tmp_path, text):
    with pytest.raises(ConfigError, match="null byte"):
        load_config(write(tmp_path, text))
