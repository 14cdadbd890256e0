"""Crash-safe file writes: temp name in the same folder, fsync, rename, fsync the folder.

A reader therefore sees either the old file or the complete new one, never a torn
write, even after ``kill -9`` or a power cut mid-write.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from device.common.jsonio import to_jsonable


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically.

    With ``overwrite=False`` an existing file is never replaced: ``FileExistsError`` is raised
    and the temporary file is removed (the final step is a hard link, which fails if the
    name is taken, instead of a rename, which would silently replace it).
    """
    return atomic_write_via(path, lambda tmp: tmp.write_bytes(data), overwrite=overwrite)


def atomic_write_text(path: str | os.PathLike, text: str, **kw) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), **kw)


def atomic_write_json(path: str | os.PathLike, obj, *, sort_keys: bool = True, **kw) -> Path:
    """``obj`` through ``device.common.jsonio.to_jsonable`` (numpy, dataclasses, paths), indented."""
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=sort_keys, allow_nan=False)
    return atomic_write_text(path, text + "\n", **kw)


def atomic_write_via(path: str | os.PathLike, writer, *, overwrite: bool = True) -> Path:
    """Like ``atomic_write_bytes`` for libraries that insist on writing a file themselves
    (picamera2's DNG writer takes a file name): ``writer(tmp_path)`` fills a temporary
    file in the same folder, which is then fsync'd and renamed (or linked) into place.

    The temporary name keeps the target's extension (writers pick the format from it) and
    is hidden and marked ``TEMP_MARK``, so a crash mid-write never leaves a complete-looking
    file, and a clean-up can tell our leftovers from other programs' files.
    """
    target = Path(path)
    tmp = stage(target, writer)
    try:
        return commit(tmp, target, overwrite=overwrite)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Marks a temporary name as this program's own (see is_temp_name); no other program uses it.
TEMP_MARK = ".fa-tmp"


def stage(path: str | os.PathLike, writer) -> Path:
    """First half of an atomic write: ``writer(tmp)`` fills a hidden, marked temporary file
    beside ``path`` and it is fsync'd. Nothing is visible yet: ``commit`` makes it so, or the
    caller unlinks the returned path."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f"{TEMP_MARK}{target.suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit(tmp: Path, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Second half: the staged ``tmp`` appears as ``path`` in one step (``FileExistsError``
    with ``overwrite=False`` if the name is taken; ``tmp`` is then left for the caller)."""
    target = Path(path)
    if overwrite:
        os.replace(tmp, target)
    else:
        os.link(tmp, target)
        tmp.unlink()
    _fsync_dir(target.parent)
    return target


def is_temp_name(name: str) -> bool:
    """True for the hidden temporary names the writers above use (left behind by a crash)."""
    return name.startswith(".") and (name.endswith(TEMP_MARK) or TEMP_MARK + "." in name)
