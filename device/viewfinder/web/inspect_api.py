"""``GET /api/inspect`` and ``POST /api/inspect`` (issue 17): the live optics inspector's
last result, and a new analysis of the last pass through focus.

* ``GET`` returns the last result, the JSON of ``focus-assist inspect --json`` plus
  ``"pass"`` (what was analysed), or ``{"result": null, "reason": "..."}``.
* ``POST`` with ``{}`` or ``{"grid": [rows, cols]}`` analyses the last pass again (on that
  grid) and returns the same.

Both are routes of ``server.WebViewfinder._routes``: the handler applies the same token,
Host, same-origin and JSON-body rules as to every other route.
"""
from __future__ import annotations

from device.viewfinder.web.api import ApiError, feature

PATH = "/api/inspect"
_WHAT = "the optics inspector"


def last(inspector) -> dict:
    return feature(inspector, _WHAT).last()


def analyse(inspector, body: dict) -> dict:
    inspector = feature(inspector, _WHAT)
    grid, error = parse_body(body)
    if error:
        raise ApiError(400, error)
    return inspector.analyse(grid)


def parse_body(body: dict) -> tuple:
    """``(grid or None, error or None)`` of a POST body."""
    extra = sorted(set(body) - {"grid"})
    if extra:
        return None, f"unknown field {extra[0]!r}: send {{}} or {{\"grid\": [rows, cols]}}"
    grid = body.get("grid")
    if grid is None:
        return None, None
    if (not isinstance(grid, list) or len(grid) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in grid)):
        return None, "grid must be two integers [rows, cols]"
    rows, cols = grid
    if not (1 <= rows <= 16 and 1 <= cols <= 16) or rows * cols < 3:
        return None, "grid: rows and columns must be 1..16, at least 3 regions"
    return (rows, cols), None
