"""A 28BYJ-48 unipolar stepper on a ULN2003 board, half-stepping, through gpiozero.

Four ``DigitalOutputDevice``s drive IN1..IN4. The coil pattern is a function of the
position (``HALF_STEP[position % 8]``), so after the coils were released the motor is
re-energised on exactly the phase it was left in, and no step is lost or gained.
"""
from __future__ import annotations

from device.errors import MotorError
from device.lens.motor.base import Motor

# Half-step sequence, IN1..IN4: one coil, two adjacent coils, the next coil... Exactly
# one input changes between neighbouring entries.
HALF_STEP: tuple[tuple[int, int, int, int], ...] = (
    (1, 0, 0, 0), (1, 1, 0, 0), (0, 1, 0, 0), (0, 1, 1, 0),
    (0, 0, 1, 0), (0, 0, 1, 1), (0, 0, 0, 1), (1, 0, 0, 1),
)


class Uln2003Motor(Motor):
    driver = "uln2003"

    def __init__(self, cfg, *, pin_factory=None, **kw):
        from gpiozero import DigitalOutputDevice

        if len(cfg.coil_pins) != 4:
            raise MotorError("the uln2003 motor needs motor.coil_pins = [IN1, IN2, IN3, IN4]")
        self._coils = []
        try:
            for pin in cfg.coil_pins:
                self._coils.append(DigitalOutputDevice(pin, pin_factory=pin_factory))
        except Exception as exc:
            self._hw_close()
            raise MotorError(f"cannot open the uln2003 motor pins: {exc}") from None
        super().__init__(**kw)

    def _apply(self, position: int) -> None:
        pattern = HALF_STEP[position % 8]
        # Switch on before off, so the rotor is always held by at least one coil.
        for coil, level in zip(self._coils, pattern):
            if level and not coil.value:
                coil.on()
        for coil, level in zip(self._coils, pattern):
            if not level and coil.value:
                coil.off()

    def _hw_energise(self) -> None:
        self._apply(self._position)

    def _hw_step(self, direction: int, new_position: int) -> None:
        self._apply(new_position)

    def _hw_release(self) -> None:
        for coil in self._coils:
            coil.off()

    def _hw_close(self) -> None:
        for coil in self._coils:
            try:
                coil.close()
            except Exception:
                pass
        self._coils = []
