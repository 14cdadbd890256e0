"""STEP/DIR stepper drivers (A4988, DRV8825, TMC2208) through gpiozero.

gpiozero has no stepper class: STEP, DIR, the optional ENABLE and the microstep-select
pins are plain ``DigitalOutputDevice``s. gpiozero is imported only when a motor is built,
and the pin factory is passed in (``MockFactory`` in tests).
"""
from __future__ import annotations

from device.errors import MotorError
from device.lens.motor.base import Motor

# Microstep-select levels per chip, in pin order (MS1, MS2[, MS3] or MODE0..2), from the
# datasheets' truth tables. The TMC2208 in standalone mode has no full-step setting.
MICROSTEP_TABLES: dict[str, dict[int, tuple[int, ...]]] = {
    "a4988": {1: (0, 0, 0), 2: (1, 0, 0), 4: (0, 1, 0), 8: (1, 1, 0), 16: (1, 1, 1)},
    "drv8825": {1: (0, 0, 0), 2: (1, 0, 0), 4: (0, 1, 0), 8: (1, 1, 0), 16: (0, 0, 1),
                32: (1, 0, 1)},
    "tmc2208": {2: (1, 0), 4: (0, 1), 8: (0, 0), 16: (1, 1)},
}


def microstep_levels(chip: str, microsteps: int, n_pins: int) -> tuple[int, ...]:
    table = MICROSTEP_TABLES[chip]
    if microsteps not in table:
        raise MotorError(f"the {chip.upper()} cannot do 1/{microsteps} steps "
                         f"(it offers {', '.join('1/%d' % m for m in sorted(table))})")
    levels = table[microsteps]
    if n_pins and n_pins != len(levels):
        raise MotorError(f"the {chip.upper()} has {len(levels)} microstep pins, "
                         f"motor.microstep_pins lists {n_pins}")
    return levels


class StepDirMotor(Motor):
    driver = "stepdir"

    def __init__(self, cfg, *, pin_factory=None, **kw):
        from gpiozero import DigitalOutputDevice

        if cfg.step_pin is None or cfg.dir_pin is None:
            raise MotorError("the stepdir motor needs motor.step_pin and motor.dir_pin")
        levels = microstep_levels(cfg.chip, cfg.microsteps, len(cfg.microstep_pins))
        self._devices = []
        try:
            def out(pin, **o):
                dev = DigitalOutputDevice(pin, pin_factory=pin_factory, **o)
                self._devices.append(dev)
                return dev
            # The driver is disabled (coils off) until the first step.
            self._enable = (out(cfg.enable_pin, active_high=not cfg.enable_active_low,
                                initial_value=False)
                            if cfg.enable_pin is not None else None)
            for pin, level in zip(cfg.microstep_pins, levels):
                out(pin, initial_value=bool(level))
            self._dir = out(cfg.dir_pin)
            self._step = out(cfg.step_pin)
        except Exception as exc:
            self._close_devices()
            raise MotorError(f"cannot open the stepdir motor pins: {exc}") from None
        self._dir_invert = cfg.dir_invert
        self._dir_state = None
        super().__init__(**kw)

    def _hw_energise(self) -> None:
        if self._enable is not None:
            self._enable.on()

    def _hw_release(self) -> None:
        # Without an ENABLE pin the driver stays powered: nothing to switch off.
        if self._enable is not None:
            self._enable.off()

    def _hw_step(self, direction: int, new_position: int) -> None:
        if direction != self._dir_state:
            # DIR must settle before the STEP edge (200-650 ns); a Python call takes longer.
            self._dir.value = (direction > 0) != self._dir_invert
            self._dir_state = direction
        self._step.on()
        self._step.off()

    def _hw_close(self) -> None:
        self._close_devices()

    def _close_devices(self) -> None:
        for dev in reversed(self._devices):
            try:
                dev.close()
            except Exception:
                pass
        self._devices = []
