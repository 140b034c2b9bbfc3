"""A simulated person who supervises an episode, takes over with the expert and marks the outcome.

It watches each step (``observe``) the way a person at the robot would, with privileged
eyes on the sim: a stall (no progress over ``stall_window`` steps), the gripper about to
enter the hazard, or the wrong block in hand. It then waits ``reaction_delay_steps``
(people are not instant), takes over for ``takeover_steps`` with the scripted expert,
hands back, and at the end marks success or failure. It speaks only through
:class:`rlpost.schema.OperatorCommand` messages, fetched with ``poll()``
(:class:`rlpost.interfaces.OperatorInput`)::

    obs, info = robot.reset(seed=s)
    operator.reset(seed=s)
    operator.observe(obs, info)
    while True:
        for cmd in operator.poll():        # take_over, human_action, hand_back, mark_*
            loop.handle(cmd)
        obs, r, term, trunc, info = robot.step(action)
        operator.observe(obs, info, terminated=term, truncated=trunc)
        if term or trunc:
            break
    final = operator.poll()                # hand_back if in control, then the mark
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from rlpost.schema import OperatorCommand, OperatorCommandKind
from rlpost.sim.base import SimRobot
from rlpost.sim.config import SimOperatorConfig
from rlpost.sim.experts import make_expert
from rlpost.sim.world import HAZARD, SimState, in_rect

log = logging.getLogger(__name__)


@dataclass
class Takeover:
    """One intervention: why and when (step indices of the episode)."""

    trigger: str  # "stall", "hazard" or "wrong_object"
    noticed_step: int
    start_step: int = -1  # first step the person's action is executed; -1 until it happens
    end_step: int = -1  # first step after control is handed back; -1 while in control


class SimulatedOperator:
    """Supervises one robot's episodes; implements :class:`rlpost.interfaces.OperatorInput`."""

    def __init__(self, robot: SimRobot, cfg: SimOperatorConfig | None = None) -> None:
        self.robot = robot
        self.cfg = cfg or SimOperatorConfig()
        self.expert = make_expert(robot, self.cfg.expert)
        self._seq = 0
        self._queue: list[OperatorCommand] = []
        self._mode = "done"
        self.takeovers: list[Takeover] = []

    @property
    def in_control(self) -> bool:
        """Whether the person holds control now (the robot should execute human_action)."""
        return self._mode == "in_control"

    def reset(self, seed: int | None = None) -> None:
        """Start watching the episode the robot has just reset to."""
        self.expert.reset(seed=seed, kind="clean")
        self._queue.clear()
        self._mode = "watching"
        self._countdown = 0
        self._remaining = 0
        self._step = 0
        self._restart_stall_watch()
        self.takeovers = []

    def poll(self) -> list[OperatorCommand]:
        """Commands issued since the last poll, oldest first."""
        out, self._queue = self._queue, []
        return out

    def observe(
        self,
        obs: dict,
        info: dict,
        *,
        terminated: bool = False,
        truncated: bool = False,
        state: SimState | None = None,
    ) -> None:
        """Look at the latest observation; may queue commands for the next step.

        Args:
            obs: the robot's observation dict (a person sees the scene; the sim's
                privileged ``state`` stands in for what they understand of it).
            info: the step's info; ``progress``, ``is_success`` and ``is_failure`` are read.
            terminated, truncated: the step's flags; at the end the outcome is marked.
            state: the sim's privileged state; default ``robot.sim_state()``.
        """
        if self._mode == "done":
            raise RuntimeError("SimulatedOperator.observe after the episode ended; call reset() first")
        state = state if state is not None else self.robot.sim_state()
        self._step = state.step
        if terminated or truncated:
            self._finish(info, truncated=truncated and not terminated)
            return
        self._watch_progress(float(info["progress"]))

        if self._mode == "watching":
            trigger = self._trigger(state)
            limit = self.cfg.max_takeovers
            if trigger and (limit is None or len(self.takeovers) < limit):
                log.debug("operator %s noticed %s at step %d", self.cfg.operator_id, trigger, self._step)
                self.takeovers.append(Takeover(trigger=trigger, noticed_step=self._step))
                self._mode, self._countdown = "reacting", self.cfg.reaction_delay_steps
        if self._mode == "reacting":
            if self._countdown > 0:  # still reacting: the policy keeps acting meanwhile
                self._countdown -= 1
                return
            self._emit("take_over")
            self.takeovers[-1].start_step = self._step
            self._mode, self._remaining = "in_control", self.cfg.takeover_steps
        if self._mode == "in_control":
            if self._remaining == 0:
                self._hand_back()
            else:
                self._emit("human_action", self.expert.act(state))
                self._remaining -= 1

    # -- internals ------------------------------------------------------------------------
    def _hand_back(self) -> None:
        self._emit("hand_back")
        self.takeovers[-1].end_step = self._step
        self._mode = "watching"
        self._restart_stall_watch()  # give the policy a fresh window after a takeover

    def _finish(self, info: dict, truncated: bool) -> None:
        if self._mode == "in_control":
            self._hand_back()
        if info.get("is_success"):
            self._emit("mark_success")
        elif info.get("is_failure") or (truncated and self.cfg.mark_timeout_as_failure):
            self._emit("mark_failure")
        self._mode = "done"

    def _restart_stall_watch(self) -> None:
        self._history: list[float] = []
        self._best_before_window = -np.inf

    def _watch_progress(self, progress: float) -> None:
        self._history.append(progress)
        w = self.cfg.stall_window
        if len(self._history) > w:
            self._best_before_window = max(self._best_before_window, self._history[-w - 1])

    def _stalled(self) -> bool:
        w = self.cfg.stall_window
        if len(self._history) <= w:
            return False
        return max(self._history[-w:]) <= self._best_before_window + self.cfg.stall_epsilon

    def _trigger(self, s: SimState) -> str:
        triggers = self.cfg.triggers
        if "hazard" in triggers and s.hazard_active and self._heading_into_hazard(s):
            return "hazard"
        if "wrong_object" in triggers and s.holding >= 0 and s.holding != s.layout.target_block:
            return "wrong_object"
        if "stall" in triggers and self._stalled():
            return "stall"
        return ""

    def _heading_into_hazard(self, s: SimState) -> bool:
        """Moving into the hazard soon, or close to it and moving toward it (a person would flinch)."""
        p, v = s.gripper, s.velocity
        if in_rect(p, HAZARD):
            return False
        if any(in_rect(p + k * v, HAZARD) for k in range(1, self.cfg.hazard_lookahead_steps + 1)):
            return True
        closest = np.clip(p, (HAZARD[0], HAZARD[1]), (HAZARD[2], HAZARD[3]))
        gap = closest - p
        return float(np.hypot(gap[0], gap[1])) < self.cfg.hazard_margin and float(gap @ v) > 0

    def _emit(self, kind: OperatorCommandKind, action: np.ndarray | None = None) -> None:
        self._seq += 1
        cmd = OperatorCommand(
            kind=kind,
            robot_id=self.cfg.robot_id,
            operator_id=self.cfg.operator_id,
            seq=self._seq,
            t_ns=time.monotonic_ns(),
            action=action,
        )
        self._queue.append(
            cmd.validate(f"sim operator {self.cfg.operator_id!r}", self.robot.robot_spec.action_dim)
        )
