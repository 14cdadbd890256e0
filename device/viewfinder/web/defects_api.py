"""``POST /api/defects/known``: the defect panel's "mark as known".

The live defect map (``device.defects.live.DefectMapSink``) keeps the mark and saves it
with the map, so a known defect stays known after a restart; ``/api/status`` lists the
confirmed defects with their ``known`` flag under ``defects``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from device.viewfinder.web.api import ApiError, integer, only

if TYPE_CHECKING:
    from device.defects.live import DefectMapSink


def mark_known(sink: "DefectMapSink", body: dict) -> dict:
    only(body, ("x", "y", "known"))
    x = integer(body, "x", "a pixel column")
    y = integer(body, "y", "a pixel row")
    known = body.get("known", True)
    if not isinstance(known, bool):
        raise ApiError(400, "known must be true or false")
    try:
        return {"defect": sink.mark_known(x, y, known)}
    except KeyError:
        raise ApiError(404, f"no confirmed defect at x={x}, y={y}") from None
    except ValueError as exc:
        raise ApiError(409, str(exc)) from None
