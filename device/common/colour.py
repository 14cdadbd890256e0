"""Overlay colours as the config and the web page name them (validated by the config)."""
from __future__ import annotations

COLOURS = {
    "red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 64, 0), "yellow": (0, 255, 255),
    "cyan": (255, 255, 0), "magenta": (255, 0, 255), "white": (255, 255, 255),
    "orange": (0, 165, 255), "black": (0, 0, 0),
}


def parse_colour(text: str) -> tuple[int, int, int]:
    """A colour name or ``#rrggbb`` -> BGR; raises ValueError naming the problem."""
    t = str(text).strip().lower()
    if t in COLOURS:
        return COLOURS[t]
    if len(t) == 7 and t.startswith("#"):
        try:
            r, g, b = (int(t[i:i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            pass
        else:
            return (b, g, r)
    raise ValueError(f"unknown colour {text!r}: use #rrggbb or one of {', '.join(COLOURS)}")
