"""Focus motors: one interface (``Motor``), four drivers, one factory (``open_motor``).

``open_motor`` is the one place that turns the ``[motor]`` config section into a motor;
gpiozero is imported only by the hardware drivers, and only when one is built.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from device.config import MOTOR_DRIVERS
from device.errors import MotorError
from device.lens.motor.base import Motor
from device.common.paths import state_dir as default_state_dir
from device.lens.motor.store import FILE_NAME, PositionStore

log = logging.getLogger(__name__)

DRIVERS = MOTOR_DRIVERS

__all__ = ["Motor", "MotorError", "open_motor", "position_store", "DRIVERS"]


def position_store(cfg, state_dir: Optional[Path] = None) -> PositionStore:
    """Where the position of a real motor is kept: ``motor.position_file``, else
    ``<state dir>/motor-position.json`` (``state_dir``: the run's; None: the default rule)."""
    if cfg.position_file:
        return PositionStore(Path(cfg.position_file).expanduser())
    return PositionStore(Path(state_dir or default_state_dir()) / FILE_NAME)


def _common(cfg) -> dict:
    return dict(limits=(cfg.min_position, cfg.max_position), speed=cfg.speed,
                acceleration=cfg.acceleration, approach=cfg.approach,
                overshoot=cfg.backlash_overshoot, release_when_idle=cfg.release_when_idle,
                idle_release_s=cfg.idle_release_s)


def open_motor(cfg, *, sim_camera=None, pin_factory=None, state_dir: Optional[Path] = None,
               store: Optional[PositionStore] = None,
               threaded: Optional[bool] = None) -> Motor:
    """Build the motor ``cfg.driver`` names.

    ``sim`` moves ``sim_camera``'s lens (a ``device.sources.sim.SimCamera``), or is a
    virtual motor without one; it never touches the position file. The hardware drivers
    start from the persisted position (``state_dir``: the service's state directory) and
    save every move there. ``pin_factory`` is gpiozero's (None: its default).
    """
    if cfg.driver == "sim":
        from device.lens.motor.sim import SimMotor

        kw = dict(_common(cfg), speed=cfg.sim_speed, acceleration=cfg.sim_acceleration)
        if threaded is None:
            # With a simulated camera the motor runs on frame time, advanced by the
            # autofocus sink once per frame, so runs are repeatable on any machine.
            threaded = sim_camera is None
        return SimMotor(sim_camera, backlash=cfg.sim_backlash, threaded=threaded,
                        store=store, **kw)
    if cfg.driver not in DRIVERS:
        raise MotorError(f"unknown motor driver {cfg.driver!r} (one of {', '.join(DRIVERS)})")
    if store is None:
        store = position_store(cfg, state_dir)
    saved = store.load()
    if saved is None:
        position = cfg.min_position
        log.warning("no saved motor position in %s: assuming %d; run 'focus-assist motor home' "
                    "or 'zero' to calibrate", store.path, position)
    else:
        position = saved.position
        if saved.moving:
            log.warning("the last run stopped mid-move: the motor position (%d) is uncertain; "
                        "run 'focus-assist motor home' to recalibrate", position)
    if not cfg.min_position <= position <= cfg.max_position:
        raise MotorError(f"saved motor position {position} lies outside the soft limits "
                         f"{cfg.min_position}..{cfg.max_position}; run 'focus-assist motor zero' "
                         "or 'home'")
    kw = dict(_common(cfg), position=position, store=store,
              threaded=True if threaded is None else threaded)
    if cfg.driver == "stepdir":
        from device.lens.motor.stepdir import StepDirMotor
        return StepDirMotor(cfg, pin_factory=pin_factory, **kw)
    if cfg.driver == "uln2003":
        from device.lens.motor.uln2003 import Uln2003Motor
        return Uln2003Motor(cfg, pin_factory=pin_factory, **kw)
    from device.lens.motor.servo import ServoMotor
    return ServoMotor(cfg, pin_factory=pin_factory, **kw)
