"""The simulated focus motor: it turns the lens of the ``sim`` camera source.

It is meant to be as awkward as a real one, so the autofocus is tested against the
problems real hardware has:

* Gear play (``backlash`` steps): after a direction reversal the first steps only take up
  the slack and the lens does not move. The slack starts at ``initial_slack``.
* Finite speed and acceleration (the common ``Motor`` ramps), so with a camera running
  the lens is mid-move for some frames.

Built with ``threaded=False`` its clock is driven by ``advance(dt)``: the closed-loop tests
and the benchmark advance it by one frame period per frame, so results do not depend on
how fast the machine renders. Without a camera it is a plain virtual motor.
"""
from __future__ import annotations

from typing import Optional

from device.lens.motor.base import Motor


class SimMotor(Motor):
    driver = "sim"

    def __init__(self, camera=None, *, backlash: int = 0, initial_slack: int = 0,
                 limits: tuple[int, int] = (0, 1000), position: Optional[int] = None, **kw):
        self.camera = camera
        self.backlash = int(backlash)
        if camera is not None:
            limits = (max(limits[0], 0), min(limits[1], int(camera.lens_range)))
            position = int(round(camera.lens_position))
            position = min(max(position, limits[0]), limits[1])
            # lens = motor position + offset - slack; the slack lies in 0..backlash, 0 when
            # the gears last pushed the lens up.
            self._slack = min(max(int(initial_slack), 0), self.backlash)
            self._offset = float(camera.lens_position) - position + self._slack
        else:
            self._slack, self._offset = 0, 0.0
        super().__init__(limits=limits, position=0 if position is None else position, **kw)

    def lens_for(self, motor_position: int) -> float:
        return motor_position + self._offset - self._slack

    def _hw_step(self, direction: int, new_position: int) -> None:
        if direction > 0:
            self._slack = max(self._slack - 1, 0)
        else:
            self._slack = min(self._slack + 1, self.backlash)
        if self.camera is not None:
            self.camera.lens_position = self.lens_for(new_position)

    def truth(self) -> dict:
        """The simulator's hidden truth (for --stats and the tests), empty without a camera."""
        if self.camera is None:
            return {}
        out = dict(self.camera.truth())
        out["in_focus"] = bool(self.camera.in_focus())
        return out
