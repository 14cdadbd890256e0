"""systemd/install.sh: the dry-run plan, and a real run with the system tools stubbed out.

The dry run is what the README tells people to read before installing, so its commands are
checked one by one. The stubbed run then executes the file-handling half for real (unit,
config, models, uninstall) in temporary folders, with apt-get, systemctl, useradd and the
venv replaced by stubs that only record how they were called.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from tests.conftest import REPO

ROOT = REPO
SCRIPT = ROOT / "systemd" / "install.sh"


def absent_user() -> str:
    return f"fa-test-{uuid.uuid4().hex[:8]}"


def run_script(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FA_")}
    full_env.update(env or {})
    cp = subprocess.run(["bash", str(SCRIPT), *args], env=full_env, capture_output=True,
                        text=True, timeout=60, stdin=subprocess.DEVNULL)
    if check:
        assert cp.returncode == 0, cp.stdout + cp.stderr
    return cp


def commands(out: str) -> list[list[str]]:
    """The ``+ cmd args`` lines of the output, split the way a shell would."""
    return [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("+ ")]


def index_of(cmds: list[list[str]], *prefix: str) -> int:
    for i, c in enumerate(cmds):
        if c[:len(prefix)] == list(prefix):
            return i
    raise AssertionError(f"no command starting {prefix!r} in:\n" + "\n".join(map(shlex.join, cmds)))


@pytest.fixture
def sandbox(tmp_path):
    """Paths the installer may touch, all under tmp_path."""
    env = {
        "FA_PREFIX": str(tmp_path / "opt" / "focus-assist"),
        "FA_CONFIG_DIR": str(tmp_path / "etc" / "focus-assist"),
        "FA_UNIT_DIR": str(tmp_path / "units"),
        "FA_STATE_DIR": str(tmp_path / "state" / "focus-assist"),
        "FA_USER": absent_user(),
    }
    (tmp_path / "units").mkdir()
    return tmp_path, env


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


# --- dry run --------------------------------------------------------------------------

def test_dry_run_install_plan():
    user = absent_user()
    cp = run_script("--dry-run", "--force", env={"FA_USER": user})
    cmds = commands(cp.stdout)
    assert "dry run" in cp.stdout and "will install" in cp.stdout  # says what it will do

    apt = cmds[index_of(cmds, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install")]
    assert "python3-picamera2" in apt and "-y" in apt

    venv = cmds[index_of(cmds, "python3", "-m", "venv")]
    assert venv == ["python3", "-m", "venv", "--system-site-packages", "/opt/focus-assist/venv"]

    pip = cmds[index_of(cmds, "/opt/focus-assist/venv/bin/pip", "install")]
    c = pip.index("-c")
    assert pip[c + 1] == str(ROOT / "constraints" / "bookworm-pi.txt")
    assert pip[-1] == f"{ROOT}[device]"

    useradd = cmds[index_of(cmds, "useradd")]
    assert useradd[-1] == user and "--system" in useradd
    assert useradd[useradd.index("--groups") + 1] == "video,gpio,render"
    assert useradd[useradd.index("--shell") + 1] == "/usr/sbin/nologin"

    unit = cmds[index_of(cmds, "install", "-m", "0644", str(ROOT / "systemd" / "focus-assist.service"))]
    assert unit[-1] == "/etc/systemd/system/focus-assist.service"
    token = index_of(cmds, "(umask", "077;", "printf")
    assert cmds[token][-1] == "/etc/focus-assist/environment)"
    enable = index_of(cmds, "systemctl", "enable", "--now", "focus-assist.service")
    # Order matters: packages before the venv, the venv before pip, the unit before enabling.
    assert index_of(cmds, "apt-get", "update") < cmds.index(apt) < cmds.index(venv) < cmds.index(pip)
    assert cmds.index(unit) < index_of(cmds, "systemctl", "daemon-reload") < enable
    assert enable == len(cmds) - 1


def test_dry_run_changes_nothing(sandbox):
    tmp, env = sandbox
    before = snapshot(tmp)
    run_script("--dry-run", "--force", env=env)
    run_script("--dry-run", "--uninstall", env=env)
    run_script("--dry-run", "--purge", env=env)
    assert snapshot(tmp) == before


def test_dry_run_never_overwrites_existing_config(sandbox):
    tmp, env = sandbox
    cfg = Path(env["FA_CONFIG_DIR"]) / "config.toml"
    fresh = run_script("--dry-run", "--force", env=env).stdout
    assert any(c[:1] == ["install"] and c[-1] == str(cfg) for c in commands(fresh))

    cfg.parent.mkdir(parents=True)
    cfg.write_text("[log]\nlevel = 'debug'\n")
    again = run_script("--dry-run", "--force", env=env).stdout
    assert not any(str(cfg) in shlex.join(c) for c in commands(again)), again
    assert f"keeping the existing {cfg}" in again
    assert cfg.read_text() == "[log]\nlevel = 'debug'\n"


def test_existing_user_is_amended_not_recreated():
    cp = run_script("--dry-run", "--force", env={"FA_USER": "root"})
    cmds = commands(cp.stdout)
    assert not any(c[0] == "useradd" for c in cmds)
    assert cmds[index_of(cmds, "usermod")] == ["usermod", "--append", "--groups", "video,gpio,render", "root"]


def test_dry_run_uninstall_keeps_config_and_captures():
    cmds = commands(run_script("--dry-run", "--uninstall", env={"FA_USER": "root"}).stdout)
    assert cmds[0] == ["systemctl", "disable", "--now", "focus-assist.service"]
    assert ["rm", "-f", "/etc/systemd/system/focus-assist.service"] in cmds
    assert ["rm", "-rf", "/opt/focus-assist"] in cmds
    flat = "\n".join(map(shlex.join, cmds))
    assert "/var/lib/focus-assist" not in flat and "/etc/focus-assist" not in flat
    assert "userdel" not in flat


def test_dry_run_purge_removes_everything():
    cmds = commands(run_script("--dry-run", "--purge", env={"FA_USER": "root"}).stdout)
    assert ["rm", "-rf", "/var/lib/focus-assist", "/etc/focus-assist"] in cmds
    assert ["userdel", "root"] in cmds  # the user exists, so it would be removed
    assert ["rm", "-rf", "/opt/focus-assist"] in cmds


def test_platform_check(tmp_path):
    model = tmp_path / "model"
    osr = tmp_path / "os-release"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    osr.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n')
    env = {"FA_DT_MODEL": str(model), "FA_OS_RELEASE": str(osr), "FA_USER": "root"}
    ok = run_script("--dry-run", env=env)
    assert "found: Raspberry Pi 5 Model B Rev 1.0, bookworm" in ok.stdout

    model.write_bytes(b"Generic x86 PC\0")
    bad = run_script("--dry-run", env=env, check=False)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "not a Raspberry Pi" in bad.stderr and "--force" in bad.stderr
    assert "+ " not in bad.stdout  # refused before doing anything

    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    osr.write_text("VERSION_CODENAME=bullseye\n")
    old = run_script("--dry-run", env=env, check=False)
    assert old.returncode == 2 and "Bookworm" in old.stderr

    assert run_script("--dry-run", env={**env, "FA_SKIP_PI_CHECK": "1"}).returncode == 0


def test_bad_option_is_one_line_exit_2():
    cp = run_script("--frobnicate", check=False)
    assert cp.returncode == 2
    assert cp.stderr == "install.sh: unknown option '--frobnicate' (try --help)\n"


def test_help():
    cp = run_script("--help")
    assert "--uninstall" in cp.stdout and "--purge" in cp.stdout and "--dry-run" in cp.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck():
    cp = subprocess.run(["shellcheck", str(SCRIPT), str(ROOT / "systemd" / "verify-unit.sh")],
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stdout


# --- real run, system tools stubbed ---------------------------------------------------

STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$STUB_LOG"
case "$(basename "$0") $1" in
  "systemctl is-active") [ -n "$STUB_ACTIVE" ] ;;
esac
"""

# Stands in for python3: "-m venv --system-site-packages DIR" makes DIR/bin/pip (a stub).
FAKE_PYTHON = """#!/bin/sh
echo "python3 $*" >> "$STUB_LOG"
dir=$(eval echo \\${$#})
mkdir -p "$dir/bin"
cp "$STUB_DIR/systemctl" "$dir/bin/pip"
"""


@pytest.fixture
def stubbed(sandbox):
    if os.geteuid() != 0:
        pytest.skip("a real (stubbed) run needs root, as install.sh checks")
    tmp, env = sandbox
    bin_dir = tmp / "stubs"
    bin_dir.mkdir()
    for name in ("apt-get", "systemctl", "groupadd", "useradd", "usermod", "userdel"):
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "python3").write_text(FAKE_PYTHON)
    (bin_dir / "python3").chmod(0o755)
    log = tmp / "calls.log"
    env = {**env, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log),
           "STUB_DIR": str(bin_dir), "FA_PYTHON": str(bin_dir / "python3")}
    return tmp, env, log


def test_stubbed_install_reinstall_uninstall_purge(stubbed):
    tmp, env, log = stubbed
    prefix, etc = Path(env["FA_PREFIX"]), Path(env["FA_CONFIG_DIR"])
    unit = Path(env["FA_UNIT_DIR"]) / "focus-assist.service"
    state = Path(env["FA_STATE_DIR"])

    first = run_script("--force", env=env)
    calls = log.read_text().splitlines()
    assert any(c.startswith("useradd --system") for c in calls)
    assert f"python3 -m venv --system-site-packages {prefix}/venv" in calls
    assert any(c.startswith("pip install") and "bookworm-pi.txt" in c for c in calls)
    assert calls[-1] == "systemctl enable --now focus-assist.service"
    # The unit and the config point at the chosen prefix and config folder.
    text = unit.read_text()
    assert f"ExecStart={prefix}/venv/bin/focus-assist run --config {etc}/config.toml" in text
    # No default path left (the temporary prefix itself ends in .../opt/focus-assist).
    assert not re.search(r"(?<![\w-])/opt/focus-assist/", text), text
    cfg = etc / "config.toml"
    assert cfg.is_file()
    assert (prefix / "README.md").is_file()
    secret = etc / "environment"
    assert secret.stat().st_mode & 0o777 == 0o600
    token = secret.read_text()
    assert re.fullmatch(r"FOCUS_ASSIST_WEB_TOKEN=[A-Za-z0-9_=-]{24}\n", token), token
    assert token.split("=", 1)[1].strip() not in first.stdout + first.stderr  # never printed

    # Re-run over a running service with an edited config: config kept, service restarted.
    cfg.write_text("# mine\n")
    log.write_text("")
    run_script("--force", env={**env, "STUB_ACTIVE": "1"})
    calls = log.read_text().splitlines()
    assert cfg.read_text() == "# mine\n"
    assert secret.read_text() == token   # the token survives re-installs
    assert calls[-2:] == ["systemctl enable --now focus-assist.service",
                          "systemctl restart focus-assist.service"]

    state.mkdir(parents=True)
    (state / "capture-0001.jpg").write_bytes(b"jpeg")
    run_script("--uninstall", env=env)
    assert not unit.exists() and not prefix.exists()
    assert cfg.read_text() == "# mine\n" and (state / "capture-0001.jpg").exists()

    run_script("--purge", env=env)
    assert not etc.exists() and not state.exists()


def test_refuses_to_remove_shallow_prefix(stubbed):
    tmp, env, log = stubbed
    cp = run_script("--uninstall", env={**env, "FA_PREFIX": "/opt"}, check=False)
    assert cp.returncode == 2 and "refusing to remove '/opt'" in cp.stderr
    assert Path("/opt").is_dir()
