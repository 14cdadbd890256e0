"""``GET /api/inspect`` and ``POST /api/inspect`` (issue 17): the live optics inspector's
last result, and a new analysis of the last pass through focus.

* ``GET`` returns the last result, the JSON of ``focus-assist inspect --json`` plus
  ``"pass"`` (what was analysed), or ``{"result": null, "reason": "..."}``.
* ``POST`` with ``{}`` or ``{"grid": [rows, cols]}`` analyses the last pass again (on that
  grid) and returns the same.

The server's request guard hands every request to ``serve`` first (after its Host check):
this module answers its own path with the server's own checks (token, same-origin POST,
the JSON body reader) and leaves every other path to the server.
"""
from __future__ import annotations

PATH = "/api/inspect"


def serve(handler) -> bool:
    """Answer ``handler``'s request when it is for ``PATH``; False to leave it alone."""
    path, query = handler._query()
    if path != PATH or handler.command not in ("GET", "HEAD", "POST"):
        return False
    post = handler.command == "POST"
    if post:
        handler.close_connection = True     # refused before the body is read
    if not handler._authorised(query):
        handler._error(401, "missing or wrong token")
        return True
    inspector = handler.app.viewfinder.inspector
    if post:
        handler._check_same_origin()
        handler.close_connection = False
        body = handler._read_json()
    if inspector is None:
        handler._error(404, "the optics inspector is not available in this run")
        return True
    if not post:
        handler._json(200, inspector.last())
        return True
    grid, error = parse_body(body)
    if error:
        handler._error(400, error)
        return True
    handler._json(200, inspector.analyse(grid))
    return True


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
