"""The outcome rule: how an episode's end (the env's flags, an operator's mark) becomes its stored outcome.

Every episode loop in rlpost (the robot actors' control loop, evaluation, the comparison
harness's practice, demo collection, the reward model's scripted practice) ends episodes
through these two functions, so an episode means the same thing whichever loop ran it.
"""

from __future__ import annotations

from typing import Literal

EnvOutcome = Literal["success", "failure", "timeout"]
Mark = Literal["", "success", "failure"]

MARK_KINDS = {"mark_success": "success", "mark_failure": "failure"}


def env_outcome(terminated: bool, info: dict) -> EnvOutcome:
    """What the env says happened at an episode's last step.

    success: ``info["is_success"]``; failure: the env terminated without success (it failed, e.g.
    the hazard or the wrong block); timeout: it was truncated (the step limit).
    """
    if info.get("is_success"):
        return "success"
    return "failure" if terminated else "timeout"


def failure_reason(outcome: str, info: dict) -> str:
    """The env's reason for a failure ('' for any other outcome)."""
    return str(info.get("failure_reason", "")) if outcome == "failure" else ""


def with_mark(outcome: EnvOutcome, mark: Mark) -> str:
    """The outcome to store when an operator marked the episode ``mark`` ('' if nobody marked it).

    A person's mark wins over the env's judgement (they see what the env cannot), with one
    exception: a failure mark on a timed-out episode keeps ``timeout``, which says the same
    (not a success) and also why.
    """
    if not mark:
        return outcome
    if mark == "failure" and outcome == "timeout":
        return "timeout"
    return mark
