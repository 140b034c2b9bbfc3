"""The operator-state rules: who holds control of one robot, and the person's action for this step.

A person's device speaks :class:`rlpost.schema.OperatorCommand` messages. ``take_over`` gives
them control (the robot executes their ``human_action`` until ``hand_back``); ``mark_success``
/ ``mark_failure`` judge the episode. In the simulated loops (evaluation, the comparison
harness, the reward model's practice data) the operator is code, so a broken exchange is a bug
and raises :class:`SchemaError`: a ``human_action`` without ``take_over``, or a step where the
person holds control and sent no action (executing the policy's action and flagging it a
person's would store a lie). The robot actors' control loop faces real devices that lag and
drop messages; it holds the robot instead (actors/control_loop.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlpost.rollout.outcome import MARK_KINDS, Mark
from rlpost.schema import OperatorCommand, SchemaError


@dataclass
class OperatorState:
    """One robot's control state within an episode, as the operator's commands left it."""

    where: str  # names the robot in errors, e.g. "practice robot 3"
    human: bool = False  # a person holds control
    human_action: np.ndarray | None = None  # float32 [A]: the person's action for the coming step
    takeovers: int = 0  # take_over commands this episode
    human_steps: int = 0  # steps executed with a person's action
    mark: Mark = ""  # the last mark received
    commands: list[OperatorCommand] = field(default_factory=list)  # every command, in order

    def apply(self, cmd: OperatorCommand, step: int) -> bool:
        """Apply one command at ``step``; True when it took control away from the policy.

        Raises:
            SchemaError: a human_action while the person does not hold control.
        """
        self.commands.append(cmd)
        if cmd.kind == "take_over":
            self.human, self.human_action = True, None
            self.takeovers += 1
            return True
        if cmd.kind == "hand_back":
            self.human, self.human_action = False, None
        elif cmd.kind == "human_action":
            if not self.human:
                raise SchemaError(
                    f"{self.where} step {step}: operator {cmd.operator_id!r} sent human_action "
                    f"(seq {cmd.seq}) without take_over"
                )
            self.human_action = cmd.action
        elif cmd.kind in MARK_KINDS:
            self.mark = MARK_KINDS[cmd.kind]  # type: ignore[assignment]
        return False

    def take_human_action(self, step: int) -> np.ndarray:
        """The person's action for this step (consumed: the next step needs a new one).

        Raises:
            SchemaError: the person holds control but sent no action for this step.
        """
        if self.human_action is None:
            raise SchemaError(
                f"{self.where} step {step}: the operator holds control but sent no human_action"
            )
        action, self.human_action = self.human_action, None
        self.human_steps += 1
        return action
