"""Where things live on disk: the one state-directory rule and the shipped models.

Captures, the defect map and the motor position all go under one state directory:

1. ``[service] state_dir`` when the config sets it;
2. else systemd's ``$STATE_DIRECTORY`` (the unit's ``StateDirectory=``; the first entry when
   it lists several);
3. else ``$XDG_STATE_HOME/focus-assist``, else ``~/.local/state/focus-assist``: a user at a
   desk can write there, where ``/var/lib`` needs root.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Optional

APP = "focus-assist"


def state_dir(configured: Optional[str] = None,
              environ: Optional[Mapping[str, str]] = None) -> Path:
    """The state directory (see the module docstring); not created here."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ if environ is None else environ
    from_systemd = (env.get("STATE_DIRECTORY") or "").split(":")[0]
    if from_systemd:
        return Path(from_systemd)
    xdg = env.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return base / APP


def repo_models_dir() -> Path:
    """Where the shipped models are: ``models/`` of the checkout this package lives in (an
    editable install), else ``<prefix>/share/focus-assist/models`` (a wheel install, which
    puts them there through setup.cfg's data_files)."""
    checkout = Path(__file__).resolve().parents[2] / "models"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / APP / "models"
