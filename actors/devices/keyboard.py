"""Terminal keyboard teleop: `rlpost teleop --endpoint tcp://127.0.0.1:5600 --robot-id sim-0`.

Keys (no key-up events in a terminal, so a motion key moves for ``hold_s`` after its last
press; the terminal's auto-repeat keeps it going while held)::

    t take over   h hand back   s mark success   f mark failure   x abort   r reset
    p pause/resume   SPACE e-stop   c clear e-stop   q quit
    i/k +y/-y   j/l -x/+x   g toggle gripper          (while you hold control)

While in control, the current action streams to the robot at ``rate_hz``.
"""

from __future__ import annotations

import argparse
import logging
import select
import sys
import termios
import time
import tty
from dataclasses import dataclass

import numpy as np

from actors.operator_channel import OperatorClient, add_curve_args, curve_args
from rlpost.schema import OperatorCommandKind

log = logging.getLogger(__name__)

COMMAND_KEYS: dict[str, OperatorCommandKind] = {
    "t": "take_over",
    "h": "hand_back",
    "s": "mark_success",
    "f": "mark_failure",
    "x": "abort",
    "r": "reset",
    " ": "estop",
    "c": "clear_estop",
}
MOTION_KEYS: dict[str, tuple[int, float]] = {"l": (0, 1.0), "j": (0, -1.0), "i": (1, 1.0), "k": (1, -1.0)}


@dataclass
class KeyboardMapper:
    """Keys -> operator commands and a streamed action (pure; the terminal loop feeds it)."""

    action_dim: int = 3
    speed: float = 0.8  # fraction of the action bound a motion key commands
    grip_dim: int | None = 2  # action dim of the gripper (+1 closed, -1 open), None: no gripper
    hold_s: float = 0.25

    def __post_init__(self) -> None:
        self.in_control = False
        self.paused = False
        self.grip = -1.0
        self._pressed: dict[int, tuple[float, float]] = {}  # axis -> (value, time of last press)

    def on_key(self, key: str, now: float) -> list[OperatorCommandKind]:
        """Commands a key press sends now (motion and gripper keys only change the action)."""
        if key in COMMAND_KEYS:
            kind = COMMAND_KEYS[key]
            if kind == "take_over":
                self.in_control = True
            elif kind in ("hand_back", "estop", "abort", "reset"):
                self.in_control = False
            return [kind]
        if key == "p":
            self.paused = not self.paused
            return ["pause" if self.paused else "resume"]
        if key in MOTION_KEYS:
            axis, sign = MOTION_KEYS[key]
            self._pressed[axis] = (sign * self.speed, now)
        elif key == "g" and self.grip_dim is not None:
            self.grip = -self.grip
        return []

    def action(self, now: float) -> np.ndarray:
        """The action to stream now: float32 [A]."""
        a = np.zeros(self.action_dim, np.float32)
        for axis, (value, t) in self._pressed.items():
            if now - t <= self.hold_s and axis < self.action_dim:
                a[axis] = value
        if self.grip_dim is not None:
            a[self.grip_dim] = self.grip
        return a


def run_keyboard(client: OperatorClient, mapper: KeyboardMapper, rate_hz: float = 20.0) -> None:
    """Read keys from the terminal and send commands until 'q'.

    Raises:
        RuntimeError: stdin is not a terminal.
    """
    if not sys.stdin.isatty():
        raise RuntimeError("keyboard teleop needs an interactive terminal on stdin")
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    print(__doc__.split("Keys", 1)[1].split("While", 1)[0], flush=True)  # the device's terminal UI
    period, next_send = 1.0 / rate_hz, time.monotonic()
    try:
        tty.setcbreak(fd)
        while True:
            ready, _, _ = select.select([sys.stdin], [], [], period / 2)
            now = time.monotonic()
            if ready:
                key = sys.stdin.read(1)
                if key == "q":
                    return
                for kind in mapper.on_key(key, now):
                    client.send_kind(kind)
                    print(f"\r{kind:<14} sent", end="", flush=True)
            if mapper.in_control and now >= next_send:
                client.send_kind("human_action", mapper.action(now), wait_ack=False)
                next_send = now + period
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def main(argv: list[str] | None = None) -> int:
    """``rlpost teleop``: keyboard teleop of one robot's operator channel."""
    p = argparse.ArgumentParser(prog="rlpost teleop", description="keyboard teleop over the operator channel")
    p.add_argument(
        "--endpoint", required=True, help="the actor's operator channel, e.g. tcp://127.0.0.1:5600"
    )
    p.add_argument("--robot-id", required=True)
    p.add_argument("--operator-id", default="keyboard")
    p.add_argument("--action-dim", type=int, default=3)
    p.add_argument("--rate-hz", type=float, default=20.0)
    add_curve_args(p)
    args = p.parse_args(argv)
    client = OperatorClient(args.endpoint, args.robot_id, args.operator_id, curve=curve_args(args))
    try:
        run_keyboard(client, KeyboardMapper(action_dim=args.action_dim), args.rate_hz)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
