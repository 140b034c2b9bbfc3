"""Test doubles for the actor tests: scripted policies, operators and robot wrappers."""

from __future__ import annotations

import time

import numpy as np

from rlpost.schema import OperatorCommand, OperatorCommandKind


class ScriptedPolicy:
    """Chunks that say where they came from: action[i] = [call_number / 1000, i / 100, grip]."""

    def __init__(self, horizon: int = 16, grip: float = 0.5, delays: dict[int, float] | None = None) -> None:
        self.horizon, self.grip, self.version = horizon, grip, 0
        self.delays = delays or {}  # call number -> seconds to sleep (a slow model)
        self.calls = 0
        self.loaded: list[int] = []

    def act(self, obs) -> np.ndarray:
        self.calls += 1
        time.sleep(self.delays.get(self.calls, 0.0))
        out = np.zeros((self.horizon, 3), np.float32)
        out[:, 1] = np.arange(self.horizon) / 100.0
        out[:, 2] = self.grip
        out[:, 0] = self.calls / 1000.0
        return out

    def load_head(self, state: dict, version: int) -> None:
        self.version = version
        self.loaded.append(version)


class NaNPolicy(ScriptedPolicy):
    def act(self, obs) -> np.ndarray:
        out = super().act(obs)
        out[2:5, 0] = np.nan
        return out


class FailingPolicy(ScriptedPolicy):
    def act(self, obs) -> np.ndarray:
        if self.calls == 1:
            self.calls += 1
            raise RuntimeError("model exploded")
        return super().act(obs)


class ScriptedOperator:
    """An OperatorInput + StepObserver: issues commands at given step numbers (after that step)."""

    def __init__(
        self,
        script: dict[int, list[tuple[OperatorCommandKind, np.ndarray | None]]],
        operator_id: str = "person",
    ) -> None:
        self.script, self.operator_id = script, operator_id
        self.step = 0
        self.queue: list[OperatorCommand] = []
        self.seq = 0
        self.sent: list[OperatorCommand] = []

    def _emit(self, at: int) -> None:
        for kind, action in self.script.get(at, []):
            self.seq += 1
            cmd = OperatorCommand(kind, "robot-0", self.operator_id, self.seq, time.monotonic_ns(), action)
            self.queue.append(cmd)
            self.sent.append(cmd)

    def poll(self) -> list[OperatorCommand]:
        out, self.queue = self.queue, []
        return out

    def on_reset(self, obs: dict, info: dict, seed: int | None) -> None:
        self.step = 0
        self._emit(0)

    def on_step(self, obs: dict, info: dict, terminated: bool, truncated: bool) -> None:
        self.step += 1
        self._emit(self.step)


class SpyRobot:
    """Wraps a robot: records every action sent, and can go away at a given step."""

    def __init__(self, robot, disconnect_at: int | None = None) -> None:
        self.robot, self.disconnect_at = robot, disconnect_at
        self.robot_spec = robot.robot_spec
        self.sent: list[np.ndarray] = []

    def reset(self, *, seed=None, options=None):
        self.sent = []
        return self.robot.reset(seed=seed, options=options)

    def step(self, action):
        self.sent.append(np.array(action))
        if self.disconnect_at is not None and len(self.sent) > self.disconnect_at:
            raise ConnectionError("cable pulled")
        return self.robot.step(action)

    def close(self) -> None:
        self.robot.close()
