"""The unit file: systemd-analyze verify (any warning fails) and the settings the issue asks for."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from device.config import ServiceConfig, SourceConfig, load_config
from tests.conftest import REPO

ROOT = REPO
UNIT = ROOT / "systemd" / "focus-assist.service"
VERIFY = ROOT / "systemd" / "verify-unit.sh"

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (apt-get install systemd); .ci/run installs it")


def settings(text: str) -> dict[str, list[str]]:
    """``Key -> [values]`` over all sections; systemd allows repeated keys."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|ms)?", value)
    assert m, value
    n, unit = float(m.group(1)), m.group(2) or "s"
    return n * {"s": 1, "sec": 1, "min": 60, "ms": 1e-3}[unit]


def verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(VERIFY), str(unit)], capture_output=True, text=True, timeout=60)


@needs_analyze
def test_systemd_analyze_verify_is_clean():
    cp = verify(UNIT)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "clean" in cp.stdout


@needs_analyze
@pytest.mark.parametrize("bad", ["WatchdogSec=soon", "PrivateDevicez=yes", "Restart=sometimes"])
def test_verify_check_fails_on_warnings(tmp_path, bad):
    """systemd-analyze exits 0 on these; the check must still fail."""
    text = UNIT.read_text().replace("[Service]\n", f"[Service]\n{bad}\n", 1)
    unit = tmp_path / "focus-assist.service"
    unit.write_text(text)
    cp = verify(unit)
    assert cp.returncode == 1, cp.stdout
    assert "not clean" in cp.stderr


def test_unit_settings():
    s = settings(UNIT.read_text())
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert one["Restart"] == "on-failure"
    assert one["RestartPreventExitStatus"] == "2"   # bad config: restarting cannot help
    assert one["EnvironmentFile"] == "-/etc/focus-assist/environment"
    assert int(one["StartLimitBurst"]) >= 2 and seconds(one["StartLimitIntervalSec"]) > 0
    assert one["User"] == "focus-assist"
    assert set(one["SupplementaryGroups"].split()) == {"video", "gpio", "render"}
    assert one["StateDirectory"] == "focus-assist"
    assert one["ExecStart"] == \
        "/opt/focus-assist/venv/bin/focus-assist run --config /etc/focus-assist/config.toml"
    assert "GPIOZERO_PIN_FACTORY=lgpio" in s["Environment"]
    assert one["ProtectSystem"] == "strict"
    assert one["NoNewPrivileges"] == "yes" and one["PrivateTmp"] == "yes"
    # These hide /dev/video*, /dev/media* and /dev/gpiochip* from the service.
    assert "PrivateDevices" not in s and "DeviceAllow" not in s and "ProtectClock" not in s
    assert one.get("DevicePolicy", "auto") == "auto"
    assert one["WantedBy"] == "multi-user.target"


def test_timings_fit_the_process():
    one = {k: v[-1] for k, v in settings(UNIT.read_text()).items()}
    watchdog = seconds(one["WatchdogSec"])
    svc, src = ServiceConfig(), SourceConfig()
    shipped = load_config(ROOT / "systemd" / "config.toml")
    for cfg_svc, cfg_src in ((svc, src), (shipped.service, shipped.source)):
        # One fault costs at most a source timeout plus the longest backoff, and no frame
        # (so no ping) arrives meanwhile: that must fit inside the watchdog with room.
        assert cfg_src.timeout_s + cfg_svc.retry_backoff_max_s < watchdog / 1.5
    # The process promises to stop within 2 s; systemd must not SIGKILL before that.
    assert seconds(one["TimeoutStopSec"]) >= 2 * 2


def test_installer_and_unit_agree():
    installer = (ROOT / "systemd" / "install.sh").read_text()
    assert "DEFAULT_PREFIX=/opt/focus-assist\n" in installer
    assert "DEFAULT_CONFIG_DIR=/etc/focus-assist\n" in installer
    assert 'UNIT=focus-assist.service\n' in installer


def test_shipped_config_loads():
    cfg = load_config(ROOT / "systemd" / "config.toml")
    assert cfg.service.max_source_failures >= 1
    # Left unset so that the unit's StateDirectory= decides.
    assert cfg.service.state_dir is None
    assert cfg.service.resolved_state_dir({"STATE_DIRECTORY": "/var/lib/focus-assist"}) == \
        Path("/var/lib/focus-assist")


def test_shipped_config_finds_the_installed_models():
    """The package is installed, not a checkout: models must be named where install.sh puts them."""
    cfg = load_config(ROOT / "systemd" / "config.toml")
    installer = (ROOT / "systemd" / "install.sh").read_text()
    assert 'install -m 0644 "$m" "$PREFIX/models/"' in installer
    assert cfg.models.focus == "/opt/focus-assist/models/focus.tflite"
    assert cfg.models.defects == "/opt/focus-assist/models/defects.tflite"
