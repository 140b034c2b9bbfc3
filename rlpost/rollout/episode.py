"""One episode on one robot, nothing stored: the lockstep loop with a single robot, for tests and tools."""

from __future__ import annotations

from collections.abc import Callable

from rlpost.interfaces import Robot
from rlpost.rollout.acting import EpisodePlan, StepActor, StepFn
from rlpost.rollout.lockstep import EpisodeRollout, WatchingOperator, run_lockstep


def run_episode(
    robot: Robot,
    act_fn: StepFn,
    operator: WatchingOperator | None = None,
    seed: int = 0,
    reset_fn: Callable[[int], object] | None = None,
) -> EpisodeRollout:
    """Run one episode: ``act_fn(obs)`` acts unless the operator has taken over.

    Args:
        robot: a Robot (reset here with ``seed``).
        act_fn: maps the validated :class:`rlpost.schema.Observation` to a float32 [A] action.
        operator: optional; reset with ``seed`` and obeyed (take_over, human_action, hand_back, marks).
        seed: the env seed (also the operator's).
        reset_fn: called with ``seed`` right after the robot resets (e.g. ``expert.reset``
            when the expert itself is the policy).

    Raises:
        SchemaError: the operator sent a human action while not in control, or none while in control.
    """

    def on_reset(_slot: int, episode: EpisodePlan) -> None:
        if reset_fn is not None:
            reset_fn(episode.seed)

    actor = StepActor([act_fn], on_reset=on_reset)
    (episode,) = run_lockstep([robot], actor, [EpisodePlan(seed)], operators=[operator], where="episode")
    return episode
