"""The few role interfaces every part of rlpost is written against.

Each docstring shows the loop that calls it. They are Protocols (shapes), so a
vendor driver, a simulated robot or a test double fits without inheriting.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from rlpost.schema import EpisodeMeta, Observation, OperatorCommand, RobotSpec, StepRecord

# Keys of the observation dict a Robot returns (a gymnasium Dict space):
#   "images": {camera: uint8 [h, w, 3]}, "state": float32 [S], "instruction": str
# Keys of ``info`` a Robot may fill:
#   "is_success": bool   the task is done (env's own judgement; an operator mark wins)
#   "is_failure": bool   the episode cannot succeed any more (e.g. object dropped off the table)
#   "progress": float    privileged task progress in [0, 1]: for evaluation only, never a training label
OBS_IMAGES, OBS_STATE, OBS_INSTRUCTION = "images", "state", "instruction"


def observation_from_dict(obs: dict[str, Any], where: str, spec: RobotSpec | None = None) -> Observation:
    """Turn a Robot's observation dict into a validated :class:`Observation`."""
    return Observation(
        images=dict(obs[OBS_IMAGES]), state=obs[OBS_STATE], instruction=str(obs[OBS_INSTRUCTION])
    ).validate(where, spec)


@runtime_checkable
class Robot(Protocol):
    """The subset of ``gymnasium.Env`` rlpost uses; a sim or a zmq bridge to hardware.

    The control loop calls it like this::

        obs, info = robot.reset(seed=seed)
        while True:
            obs, reward, terminated, truncated, info = robot.step(action)  # float32 [A]
            if terminated or truncated:
                break
    """

    robot_spec: RobotSpec

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]: ...

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]: ...

    def close(self) -> None: ...


@runtime_checkable
class Policy(Protocol):
    """Maps an observation to a chunk of actions.

    The control loop calls it off the control thread::

        chunk = policy.act(obs)      # float32 [H, A], robot units
        for action in chunk[:k]:     # execute k of H, then replan
            robot.step(action)
    """

    @property
    def version(self) -> int: ...

    def act(self, obs: Observation) -> np.ndarray: ...


@runtime_checkable
class WeightSource(Protocol):
    """Where actors get new head weights; polled between chunks or episodes::

        latest = source.latest_version()
        if latest > policy.version:
            policy.load_head(source.fetch(latest), latest)

    The actor loads a head only when its version is newer than the one it runs.
    """

    def latest_version(self) -> int: ...

    def fetch(self, version: int) -> dict[str, np.ndarray]: ...


@runtime_checkable
class EpisodeSink(Protocol):
    """Where recorded steps go; every step handed over must survive a crash::

        sink.begin(meta)
        for step in steps:
            sink.append(meta.episode_id, step)           # before the robot executes it
            reward = robot.step(step.action)[1]
            sink.set_reward(meta.episode_id, step.frame_index, reward)
        sink.finish(meta.episode_id, outcome="success", marked_by="operator")

    A step is appended before the robot executes its action, so a crash loses no executed step.
    """

    def begin(self, meta: EpisodeMeta) -> None: ...

    def append(self, episode_id: str, step: StepRecord) -> None: ...

    def set_reward(self, episode_id: str, frame_index: int, reward: float) -> None: ...

    def finish(self, episode_id: str, outcome: str, marked_by: str) -> EpisodeMeta: ...


@runtime_checkable
class OperatorInput(Protocol):
    """A person's device (teleop, console, simulated operator), polled each control step::

        for cmd in operator.poll():
            loop.handle(cmd)

    ``poll`` returns the commands received since the last poll, oldest first.
    """

    def poll(self) -> list[OperatorCommand]: ...
