"""Journald-friendly logging: priority prefixes and no timestamps under systemd."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest

from device.errors import ConfigError
from device.service.logs import setup_logging, syslog_priority, under_journal

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def _log_some(stream_file, environ, level="info"):
    setup_logging(level, stream=stream_file, environ=environ)
    lg = logging.getLogger("device.test")
    lg.debug("debug line")
    lg.info("ready after %d ms", 12)
    lg.warning("camera slow")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        lg.exception("frame failed")
    stream_file.flush()
    stream_file.seek(0)
    return stream_file.read()


def test_priorities():
    assert syslog_priority(logging.DEBUG) == 7
    assert syslog_priority(logging.INFO) == 6
    assert syslog_priority(logging.WARNING) == 4
    assert syslog_priority(logging.ERROR) == 3
    assert syslog_priority(logging.CRITICAL) == 2


def test_terminal_format_has_timestamps(tmp_path):
    with open(tmp_path / "err", "w+") as fh:
        out = _log_some(fh, {})
    lines = out.splitlines()
    assert "debug line" not in out
    assert STAMP.match(lines[0]) and "INFO" in lines[0] and "device.test: ready after 12 ms" in lines[0]
    assert not lines[0].startswith("<")
    assert "Traceback" in out


def test_invocation_id_means_journal_format(tmp_path):
    with open(tmp_path / "err", "w+") as fh:
        out = _log_some(fh, {"INVOCATION_ID": "abc123"}, level="debug")
    lines = out.splitlines()
    assert lines[0] == "<7>device.test: debug line"
    assert lines[1] == "<6>device.test: ready after 12 ms"
    assert lines[2] == "<4>device.test: camera slow"
    assert lines[3] == "<3>device.test: frame failed"
    # Every traceback line keeps the error priority, so journalctl -p err shows it whole.
    assert all(line.startswith("<3>") for line in lines[3:]) and len(lines) > 4
    assert not STAMP.search(out)


def test_journal_stream_must_match_the_stream(tmp_path):
    with open(tmp_path / "err", "w+") as fh:
        st = os.fstat(fh.fileno())
        match = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert under_journal(fh, match)
        # Inherited by a process whose stderr went elsewhere: not the journal.
        other = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}", "INVOCATION_ID": "x"}
        assert not under_journal(fh, other)
        assert not under_journal(fh, {"JOURNAL_STREAM": "garbage"})
        out = _log_some(fh, match)
    assert out.startswith("<6>device.test: ready after 12 ms\n")


def test_repeat_setup_replaces_handler_and_level(tmp_path):
    root = logging.getLogger()
    before = len(root.handlers)
    with open(tmp_path / "a", "w+") as a:
        setup_logging("info", stream=a, environ={})
        setup_logging("warning", stream=a, environ={})
        assert len(root.handlers) == before + 1
        assert root.level == logging.WARNING


def test_bad_level_is_config_error():
    with pytest.raises(ConfigError, match="unknown log level 'loud'"):
        setup_logging("loud", environ={})


def test_real_process_stderr_under_invocation_id():
    """The whole path in a child process: environment in, prefixed stderr out."""
    code = ("from device.service.logs import setup_logging; import logging; setup_logging('info'); "
            "logging.getLogger('device.x').warning('hello')")
    env = dict(os.environ, INVOCATION_ID="0123")
    env.pop("JOURNAL_STREAM", None)
    cp = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert cp.stderr == "<4>device.x: hello\n"
