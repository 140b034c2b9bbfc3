"""Gamepad / joystick teleop through pygame (SDL): sticks move, buttons send commands.

Default mapping (an Xbox-style pad; change it in :class:`GamepadMapper`): left stick x/y
-> action dims 0/1, right trigger axis -> gripper; A take over, B hand back, X mark
success, Y mark failure, BACK abort, START reset, LB e-stop, RB clear e-stop.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.operator_channel import OperatorClient, add_curve_args, curve_args
from rlpost.schema import OperatorCommandKind

log = logging.getLogger(__name__)


class DeviceNotFound(RuntimeError):
    """No gamepad is connected (or pygame cannot see one)."""


@dataclass
class GamepadMapper:
    """Stick and button state -> streamed action and edge-triggered commands (pure)."""

    action_dim: int = 3
    axes: dict[int, tuple[int, float]] = field(
        default_factory=lambda: {0: (0, 1.0), 1: (1, -1.0)}
    )  # action dim -> (axis, sign)
    grip_dim: int | None = 2
    grip_axis: int = 5  # trigger: -1 released .. +1 pressed
    deadzone: float = 0.1
    buttons: dict[int, OperatorCommandKind] = field(
        default_factory=lambda: {
            0: "take_over",
            1: "hand_back",
            2: "mark_success",
            3: "mark_failure",
            6: "abort",
            7: "reset",
            4: "estop",
            5: "clear_estop",
        }
    )

    def __post_init__(self) -> None:
        self._down: set[int] = set()

    def commands(self, pressed: list[bool]) -> list[OperatorCommandKind]:
        """Commands for buttons that went down since the last call."""
        now = {i for i, b in enumerate(pressed) if b}
        out = [self.buttons[i] for i in sorted(now - self._down) if i in self.buttons]
        self._down = now
        return out

    def action(self, axis_values: list[float]) -> np.ndarray:
        """float32 [A] from the axis values in [-1, 1]."""
        a = np.zeros(self.action_dim, np.float32)
        for dim, (axis, sign) in self.axes.items():
            v = axis_values[axis] if axis < len(axis_values) else 0.0
            a[dim] = 0.0 if abs(v) < self.deadzone else sign * v
        if self.grip_dim is not None and self.grip_axis < len(axis_values):
            a[self.grip_dim] = axis_values[self.grip_axis]
        return np.clip(a, -1.0, 1.0)


def open_gamepad(index: int = 0) -> Any:  # a pygame.joystick.JoystickType
    """The ``index``-th joystick pygame sees.

    Raises:
        DeviceNotFound: pygame sees no joystick at that index (the message says how many it sees).
    """
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # joysticks need no window
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as e:
        raise ImportError("gamepad teleop needs pygame: pip install 'rlpost[teleop]'") from e

    pygame.display.init()  # the event pump needs it; the dummy driver opens no window (and no audio)
    pygame.joystick.init()
    count = pygame.joystick.get_count()
    if index >= count:
        raise DeviceNotFound(
            f"gamepad teleop: pygame sees {count} joystick(s), none at index {index}; connect a gamepad "
            f"(check permissions on /dev/input) or use the keyboard device (rlpost teleop)"
        )
    pad = pygame.joystick.Joystick(index)
    pad.init()
    log.info(
        "gamepad %d: %s (%d axes, %d buttons)", index, pad.get_name(), pad.get_numaxes(), pad.get_numbuttons()
    )
    return pad


def run_gamepad(client: OperatorClient, mapper: GamepadMapper, index: int = 0, rate_hz: float = 50.0) -> None:
    """Stream the gamepad to the robot until interrupted (Ctrl-C).

    Raises:
        DeviceNotFound: no gamepad.
    """
    import pygame

    pad = open_gamepad(index)
    in_control = False
    period = 1.0 / rate_hz
    try:
        while True:
            pygame.event.pump()
            for kind in mapper.commands([bool(pad.get_button(i)) for i in range(pad.get_numbuttons())]):
                client.send_kind(kind)
                in_control = kind == "take_over" or (
                    in_control and kind not in ("hand_back", "estop", "abort", "reset")
                )
            if in_control:
                axes = [pad.get_axis(i) for i in range(pad.get_numaxes())]
                client.send_kind("human_action", mapper.action(axes), wait_ack=False)
            time.sleep(period)
    except KeyboardInterrupt:
        log.info("gamepad teleop stopped")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="rlpost teleop-gamepad", description="gamepad teleop over the operator channel"
    )
    p.add_argument("--endpoint", required=True)
    p.add_argument("--robot-id", required=True)
    p.add_argument("--operator-id", default="gamepad")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--action-dim", type=int, default=3)
    add_curve_args(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    client = OperatorClient(args.endpoint, args.robot_id, args.operator_id, curve=curve_args(args))
    try:
        run_gamepad(client, GamepadMapper(action_dim=args.action_dim), args.index)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
