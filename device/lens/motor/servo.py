"""A hobby servo turning the focus ring through a follow-focus gear (gpiozero AngularServo).

Positions min_position..max_position map linearly onto min_angle..max_angle. The servo
is driven one position at a time at the configured speed (a servo told to jump would slam
the ring at its own top speed), and releasing it detaches the pulse train.
"""
from __future__ import annotations

from device.errors import MotorError
from device.lens.motor.base import Motor


class ServoMotor(Motor):
    driver = "servo"

    def __init__(self, cfg, *, pin_factory=None, **kw):
        from gpiozero import AngularServo

        if cfg.servo_pin is None:
            raise MotorError("the servo motor needs motor.servo_pin")
        self._lo, self._hi = cfg.min_position, cfg.max_position
        self._a0, self._a1 = cfg.min_angle, cfg.max_angle
        lo_a, hi_a = sorted((cfg.min_angle, cfg.max_angle))
        try:
            # Start detached: the servo is only driven once asked to move.
            self._servo = AngularServo(cfg.servo_pin, initial_angle=None, min_angle=cfg.min_angle,
                                       max_angle=cfg.max_angle,
                                       min_pulse_width=cfg.min_pulse_width,
                                       max_pulse_width=cfg.max_pulse_width,
                                       pin_factory=pin_factory)
        except Exception as exc:
            # gpiozero's PinPWMUnsupported carries no text: the class name is the reason.
            reason = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
            if exc.__class__.__name__ == "PinPWMUnsupported":
                reason += (" (the pin factory has no PWM; with GPIOZERO_PIN_FACTORY=mock set "
                           "GPIOZERO_MOCK_PIN_CLASS=mockpwmpin)")
            raise MotorError(f"cannot open the servo pin {cfg.servo_pin}: {reason}") from None
        self._angle_range = (lo_a, hi_a)
        super().__init__(**kw)

    def angle_for(self, position: int) -> float:
        frac = (position - self._lo) / (self._hi - self._lo)
        return self._a0 + frac * (self._a1 - self._a0)

    @property
    def angle(self):
        return self._servo.angle

    def _hw_energise(self) -> None:
        self._servo.angle = self.angle_for(self._position)

    def _hw_step(self, direction: int, new_position: int) -> None:
        self._servo.angle = self.angle_for(new_position)

    def _hw_release(self) -> None:
        self._servo.detach()

    def _hw_close(self) -> None:
        try:
            self._servo.close()
        except Exception:
            pass
