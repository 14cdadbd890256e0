"""``focus-assist motor home|zero|goto N|jog ±N|status``: calibrate and drive the focus motor.

Each command opens the motor from the config, acts, waits for the motion to finish, saves
the position and de-energises the coils, also on SIGTERM or Ctrl-C.
"""
from __future__ import annotations

import signal

from device.common.cli_types import number
from device.errors import MotorError


_int = number(int, what="a whole number of steps")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("motor", help="calibrate and drive the focus motor",
                              description="Drive the focus motor. Positions are motor steps "
                                          "within the soft limits of the [motor] config section.")
    p.add_argument("--config", help="TOML config file")
    p.add_argument("--driver", choices=("sim", "stepdir", "uln2003", "servo"),
                   help="override motor.driver")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = p.add_subparsers(dest="motor_command", required=True,
                           parser_class=type(p))
    sub.add_parser("status", help="print the saved position and the soft limits")
    sub.add_parser("home", help="drive to the lower stop (or home switch) and call it "
                                "min_position")
    z = sub.add_parser("zero", help="declare the current position (default: min_position)")
    z.add_argument("position", nargs="?", type=_int)
    g = sub.add_parser("goto", help="move to position N (final approach backlash-safe)")
    g.add_argument("position", type=_int)
    j = sub.add_parser("jog", help="move by N steps (negative: down)")
    j.add_argument("steps", type=_int)
    p.set_defaults(func=run)


def _sigterm(_signum, _frame):
    # Unwind through the motor's context manager: stop, save, de-energise.
    raise SystemExit(143)


def run(args) -> int:
    from device.config import load_config
    from device.lens.motor import open_motor

    over = {"motor": {"driver": args.driver}} if args.driver else None
    cfg = load_config(getattr(args, "config", None), over)
    mc = cfg.motor
    old = None
    try:
        old = signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:  # not the main thread (tests): nothing to install
        pass
    try:
        with open_motor(mc, state_dir=cfg.service.resolved_state_dir()) as motor:
            cmd = args.motor_command
            if cmd == "goto":
                motor.move_to(args.position)
            elif cmd == "jog":
                motor.move_by(args.steps)
            elif cmd == "zero":
                motor.set_position(mc.min_position if args.position is None else args.position)
            elif cmd == "home":
                _home(motor, mc)
            try:
                motor.wait()
            except KeyboardInterrupt:
                motor.stop()
                raise
            pos = motor.position
            limits = motor.limits
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    if args.json:
        import json
        print(json.dumps({"position": pos, "min_position": limits[0],
                          "max_position": limits[1], "driver": mc.driver}))
    else:
        print(f"motor ({mc.driver}) at {pos}  (soft limits {limits[0]}..{limits[1]})")
    return 0


def _home(motor, mc) -> None:
    if mc.driver == "servo":
        # A servo knows its angle: homing is just going to the low end.
        motor.move_to(mc.min_position)
        motor.wait()
        return
    if mc.driver == "stepdir" and mc.home_pin is None and mc.home_travel == 0:
        raise MotorError("homing a stepdir motor needs motor.home_pin (a limit switch) or an "
                         "explicit motor.home_travel: driving a strong stepper into the lens's "
                         "stop for a guessed distance could damage it")
    travel = mc.home_travel or int((mc.max_position - mc.min_position) * 1.1)
    switch = None
    button = None
    if mc.home_pin is not None:
        from device.lens.button import open_button

        button = open_button(mc.home_pin, "motor.home_pin")
        switch = lambda: button.is_pressed  # noqa: E731
    try:
        # Slowly: a clutch or a weak motor stalls at the stop without harm.
        speed = motor.speed
        motor.speed = max(speed / 4, 1.0)
        try:
            motor.home(travel, switch=switch)
        finally:
            motor.speed = speed
    finally:
        if button is not None:
            button.close()
