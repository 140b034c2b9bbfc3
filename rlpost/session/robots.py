"""The robot side of a session: :class:`RobotGroup` (several sims in one actor process) and
the driver's record of each robot actor (``_Robot``) and of each finished episode (``_outcome``).

RobotGroup is a plain class; the session applies ``ray.remote`` to it (and to
:class:`actors.robot_actor.RobotActor` for one robot per actor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.config import ActorConfig
from actors.control_loop import EpisodeReport
from actors.live_view import FrameWindow
from actors.runner import ActorStatus, RobotRunner, RobotSnapshot
from rlpost.fleet_status import EpisodeOutcome


class RobotGroup:
    """Several simulated robots in one actor process, each with its own runner (plain class).

    Ray runs concurrent calls on threads (``max_concurrency``), so each robot's ``run``
    proceeds in parallel; weights offered once reach every robot of the group.
    """

    def __init__(self, cfgs: list[ActorConfig]) -> None:
        self.runners = {c.robot_id: RobotRunner.from_config(c) for c in cfgs}

    def run(self, robot_id: str, episodes: int, estop_wait_s: float = 0.0) -> list[EpisodeReport]:
        return self.runners[robot_id].run(episodes, estop_wait_s)

    def status(self) -> list[ActorStatus]:
        return [r.status() for r in self.runners.values()]

    def snapshot(self) -> list[RobotSnapshot]:
        return [r.snapshot() for r in self.runners.values()]

    def recent_frames(self, robot_id: str, steps: list[int]) -> FrameWindow | None:
        return self.runners[robot_id].recent_frames(steps)

    def offer_weights(self, tensors: dict[str, np.ndarray], version: int) -> bool:
        return all([r.offer_weights(tensors, version) for r in self.runners.values()])

    def close(self) -> None:
        for r in self.runners.values():
            r.close()


@dataclass
class _Robot:
    robot_id: str
    actor: Any  # Ray actor handle (RobotActor or RobotGroup)
    grouped: bool
    running: Any = None  # ObjectRef of the run() in flight
    restarts: int = 0


def _outcome(robot_id: str, r: EpisodeReport) -> EpisodeOutcome:
    return EpisodeOutcome(
        robot_id=robot_id,
        outcome=r.meta.outcome,
        steps=r.steps,
        intervention_steps=r.intervention_steps,
        takeovers=sum(c.kind == "take_over" for c in r.commands),
        duration_s=r.meta.duration_s,
    )
