"""A minimal episode loop for tests and demo collection in one process.

The real control loop (action chunks, safety filter, recording) lives in ``actors/``;
this one only runs a robot with an action function and, optionally, a simulated
operator whose commands it obeys, and returns what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rlpost.interfaces import Robot
from rlpost.schema import OperatorCommand, SchemaError
from rlpost.sim.operator import SimulatedOperator


@dataclass
class EpisodeResult:
    """What one episode did."""

    outcome: str  # "success", "failure" or "timeout"
    length: int  # steps executed
    total_reward: float
    failure_reason: str  # the env's reason ('' unless outcome is failure)
    interventions: list[bool] = field(default_factory=list)  # per step: a person's action was executed
    progress: list[float] = field(default_factory=list)  # per step, after the step (privileged)
    commands: list[OperatorCommand] = field(default_factory=list)  # every command received, in order
    marked: str = ""  # "success" / "failure" if the operator marked the outcome, else ''


def run_episode(
    robot: Robot,
    act_fn: Callable[[dict], np.ndarray],
    operator: SimulatedOperator | None = None,
    seed: int | None = None,
    reset_fn: Callable[[int | None], object] | None = None,
) -> EpisodeResult:
    """Run one episode: ``act_fn(obs)`` acts unless the operator has taken over.

    Args:
        robot: a Robot (reset here with ``seed``).
        act_fn: maps the observation dict to a float32 [A] action.
        operator: optional; reset with ``seed`` and obeyed (take_over, human_action, hand_back).
        seed: the env seed (also the operator's).
        reset_fn: called with ``seed`` right after the robot resets (e.g. ``expert.reset``
            when the expert itself is the policy).

    Raises:
        SchemaError: the operator sent a human action while not in control, or none while in control.
    """
    obs, info = robot.reset(seed=seed)
    if reset_fn is not None:
        reset_fn(seed)
    result = EpisodeResult(outcome="timeout", length=0, total_reward=0.0, failure_reason="")
    human = False
    if operator is not None:
        operator.reset(seed=seed)
        operator.observe(obs, info)
    while True:
        human_action = None
        if operator is not None:
            for cmd in operator.poll():
                result.commands.append(cmd)
                if cmd.kind == "take_over":
                    human = True
                elif cmd.kind == "hand_back":
                    human = False
                elif cmd.kind == "human_action":
                    if not human:
                        raise SchemaError(
                            f"operator {cmd.operator_id!r} sent human_action (seq {cmd.seq}) without take_over"
                        )
                    human_action = cmd.action
        if human and human_action is None:
            raise SchemaError(f"operator took over at step {result.length} but sent no human_action")
        action = human_action if human else act_fn(obs)
        obs, reward, terminated, truncated, info = robot.step(action)  # type: ignore[arg-type]
        result.length += 1
        result.total_reward += reward
        result.interventions.append(human)
        result.progress.append(float(info["progress"]))
        if operator is not None:
            operator.observe(obs, info, terminated=terminated, truncated=truncated)
        if terminated or truncated:
            break
    if info["is_success"]:
        result.outcome = "success"
    elif info["is_failure"]:
        result.outcome, result.failure_reason = "failure", str(info.get("failure_reason", ""))
    if operator is not None:
        for cmd in operator.poll():
            result.commands.append(cmd)
            if cmd.kind in ("mark_success", "mark_failure"):
                result.marked = cmd.kind.removeprefix("mark_")
    return result
