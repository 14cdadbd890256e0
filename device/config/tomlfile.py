"""Reading a config file: only a regular, readable, UTF-8 TOML file becomes a table; anything
else (a FIFO, /dev/zero, a non-UTF-8 or huge file, deep nesting) is one ``ConfigError``."""
from __future__ import annotations

import stat
import tomllib
from pathlib import Path

from device.errors import ConfigError

# A config is a few KB; a bigger "file" is a mistake (a symlink to /dev/zero read for 20 s).
MAX_CONFIG_BYTES = 1 << 20


def read_toml(p: Path) -> dict:
    """The TOML table in ``p``: a ConfigError naming the problem for anything but a regular,
    readable, UTF-8 file of at most ``MAX_CONFIG_BYTES``."""
    if "\x00" in str(p):
        raise ConfigError("config file path must not contain a null byte")
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"config file {p} is a folder")
        if not stat.S_ISREG(st.st_mode):   # a FIFO or device would block or never end
            raise ConfigError(f"config file {p} is not a regular file")
        with p.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {p} is larger than {MAX_CONFIG_BYTES // 1024} KB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p} is not UTF-8 text (byte 0x{raw[exc.start]:02x} "
                          f"at offset {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {p} nests too deeply") from None
