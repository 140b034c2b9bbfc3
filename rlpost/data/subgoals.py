"""Hindsight subgoals: where the robot was when it next opened or closed its gripper.

A demonstration shows, without any labels, where the things that matter are: the
gripper closes on the object the instruction names and opens over the place it names.
Regressing that position from the backbone's features (an auxiliary loss in
pretraining) makes the encoder locate the named object, the skill imitation alone
learns slowly at this scale (EXPERIMENTS.md: an object-position auxiliary loss doubled
the pace). It needs only the stored actions and proprio state, so it works on any
robot with a gripper command, simulated or real.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlpost.schema import SchemaError


@dataclass(frozen=True)
class SubgoalSpec:
    """Which action dim is the gripper command and which state dims locate the end effector."""

    gripper_dim: int = -1  # index into the action; > 0 means close (the sims' convention)
    state_dims: list[int] = field(default_factory=lambda: [0, 1])  # e.g. x, y of the gripper

    def check(self, state_dim: int, action_dim: int, where: str) -> None:
        if not -action_dim <= self.gripper_dim < action_dim:
            raise SchemaError(
                f"{where}: gripper_dim={self.gripper_dim} is not a dim of the {action_dim}-d action"
            )
        bad = [d for d in self.state_dims if not 0 <= d < state_dim]
        if not self.state_dims or bad:
            raise SchemaError(
                f"{where}: state_dims={list(self.state_dims)} must be non-empty indices into the {state_dim}-d state"
            )


def subgoal_targets(action: np.ndarray, state: np.ndarray, spec: SubgoalSpec) -> np.ndarray:
    """float32 [T, K]: for every step t, ``state[k, spec.state_dims]`` at the first step k > t
    where the gripper command changes (close <-> open); the episode's last state if none.

    Args:
        action: float32 [T, A] executed actions of one episode.
        state: float32 [T, S] observed states (state[k] is observed before action[k]).
    """
    n = len(action)
    closed = action[:, spec.gripper_dim] > 0
    # k is an event if the command at k differs from the one at k - 1; the effect of that
    # command shows in the state from k + 1 on, but the gripper is where it acts at k.
    events = np.flatnonzero(closed[1:] != closed[:-1]) + 1
    events = np.append(events, n - 1)
    nxt = events[np.searchsorted(events, np.arange(n), side="right").clip(max=len(events) - 1)]
    return state[nxt][:, list(spec.state_dims)].astype(np.float32)
