"""A push button or limit switch on a GPIO pin: the one place gpiozero's Button is built."""
from __future__ import annotations

from device.errors import MotorError


def open_button(pin, what: str, pin_factory=None, bounce_time: float = 0.05):
    """``gpiozero.Button(pin)`` with ``pin_factory`` (None: gpiozero's default); a pin that
    cannot be opened is a ``MotorError`` naming the setting (``what``)."""
    try:
        from gpiozero import Button

        return Button(pin, pin_factory=pin_factory, bounce_time=bounce_time)
    except Exception as exc:
        raise MotorError(f"cannot open {what} (GPIO {pin}): {exc}") from None
