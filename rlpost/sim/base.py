"""The shared machinery of the built-in simulated robots: a gripper in a 2-D tabletop world.

Action (float32 [3], in [-1, 1]): ``[vx, vy, grip]``. The velocity is scaled to at most
``MAX_SPEED`` world units per step (its norm is capped at 1, so diagonals are not faster);
``grip > 0`` closes the gripper. Closing within ``GRASP_RADIUS`` of a block grasps the
nearest one; opening releases it where it is. A gripper that lost its block must open
before it can grasp again. Out-of-range values are clipped (a robot's safety filter
would do the same); NaN, Inf, a wrong dtype or shape raise :class:`SchemaError`.

State (float32 [6]): ``[x, y, vx, vy, grip_closed, holding]``: position in [0, 1]^2,
last displacement in units of MAX_SPEED, and two 0/1 flags.

Reward: ``1`` on success, ``-1`` on failure, minus ``step_cost`` every step.
"""

from __future__ import annotations

import string
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlpost.interfaces import OBS_IMAGES, OBS_INSTRUCTION, OBS_STATE
from rlpost.schema import RobotSpec, check_array
from rlpost.sim.config import SimConfig
from rlpost.sim.render import Renderer
from rlpost.sim.world import (
    GRASP_RADIUS,
    HAZARD,
    MAX_SPEED,
    RING_RADIUS,
    WALL,
    WORKSPACE,
    Layout,
    SimState,
    distance,
    in_rect,
    move_gripper,
)

STATE_DIM = 6
ACTION_DIM = 3
INSTRUCTION_CHARSET = string.ascii_letters + string.digits + " ,.'-"
STATE_LOW = np.array([0.0, 0.0, -1.0, -1.0, 0.0, 0.0], dtype=np.float32)
STATE_HIGH = np.ones(STATE_DIM, dtype=np.float32)


class SimRobot(gym.Env):
    """Base class of the built-in tasks; a subclass samples a layout and judges the task.

    Satisfies :class:`rlpost.interfaces.Robot`. Observations are
    ``{"images": {camera: uint8 [S, S, 3]}, "state": float32 [6], "instruction": str}``.
    ``info`` holds ``is_success``, ``is_failure``, ``progress`` (privileged, for evaluation
    only), ``object_positions`` (privileged float32 [K, 2]: the instructed block, the
    instructed ring, the other blocks, the other rings, then the button if any),
    ``stage``, ``failure_reason`` ('' if none), ``dropped`` (a drop this step) and ``route``
    (privileged: the gap, "top" or "bottom", in which the gripper first reached the wall's
    line this episode; '' before that or without a wall): what a route choice did, for evaluation.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}
    task_name: ClassVar[str] = ""
    n_stages: ClassVar[int] = 2

    def __init__(self, cfg: SimConfig | None = None, render_mode: str | None = None) -> None:
        cfg = (cfg or SimConfig(task=self.task_name)).resolved()
        if cfg.task != self.task_name:
            raise ValueError(
                f"{type(self).__name__} runs task {self.task_name!r}, got a config for {cfg.task!r}"
            )
        self.cfg = cfg
        self.render_mode = render_mode
        self.max_steps: int = cfg.max_steps  # type: ignore[assignment]  # resolved() fills it
        size = cfg.image_size
        self.robot_spec = RobotSpec(
            cameras={cam: (size, size) for cam in cfg.cameras},
            state_dim=STATE_DIM,
            action_dim=ACTION_DIM,
            action_low=np.full(ACTION_DIM, -1.0, dtype=np.float32),
            action_high=np.full(ACTION_DIM, 1.0, dtype=np.float32),
            control_hz=cfg.control_hz,
        ).validate(f"sim robot {self.task_name!r}")
        self.action_space = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                OBS_IMAGES: spaces.Dict(
                    {cam: spaces.Box(0, 255, shape=(size, size, 3), dtype=np.uint8) for cam in cfg.cameras}
                ),
                OBS_STATE: spaces.Box(STATE_LOW, STATE_HIGH, dtype=np.float32),
                OBS_INSTRUCTION: spaces.Text(max_length=200, charset=INSTRUCTION_CHARSET),
            }
        )
        self._renderer = Renderer(size, cfg.cameras, cfg.wrist_zoom)
        self._hazard_active = cfg.wall and cfg.hazard_fail_prob > 0
        self._drops = bool(cfg.drop_prob)
        self._layout: Layout | None = None
        self._done = True

    # -- what a task defines ------------------------------------------------------------
    def _sample_layout(self, rng: np.random.Generator) -> Layout:
        raise NotImplementedError

    def _make_instruction(self, layout: Layout) -> str:
        raise NotImplementedError

    def _judge(self) -> tuple[int, float, bool, str]:
        """(stage, progress in [0, 1], success, failure_reason or '') of the current state."""
        raise NotImplementedError

    def _on_reset(self) -> None:
        """Task bookkeeping after the layout is placed (e.g. distances for progress)."""

    # -- helpers for tasks ----------------------------------------------------------------
    def _in_ring(self, block: int, ring: int) -> bool:
        """A released block whose centre lies inside the ring."""
        layout = self._require_layout()
        return self._holding != block and distance(self._blocks[block], layout.ring_pos[ring]) <= RING_RADIUS

    def _require_layout(self) -> Layout:
        if self._layout is None:
            raise RuntimeError(f"sim robot {self.task_name!r}: call reset() before step()")
        return self._layout

    # -- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        layout = self._sample_layout(self.np_random)
        self._layout = layout
        self._instruction = self._make_instruction(layout)
        self._gripper = layout.gripper_start.copy()
        self._velocity = np.zeros(2, dtype=np.float32)
        self._grip_closed = False
        self._need_reopen = False
        self._holding = -1
        self._blocks = layout.block_pos.copy()
        self._t = 0
        self._in_hazard = False
        self._route = ""
        self._done = False
        self._dropped = False
        self._stage, self._progress = 0, 0.0
        self._renderer.set_scene(layout, self.cfg.wall, self._hazard_active)
        self._on_reset()
        self._stage, self._progress, _, _ = self._judge()
        return self._obs(), self._info(False, "")

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        self._require_layout()
        if self._done:
            raise RuntimeError(
                f"sim robot {self.task_name!r}: the episode is over; call reset() before step()"
            )
        where = f"sim robot {self.task_name!r} step {self._t}"
        a = check_array(
            action, name="action", where=where, dtype=np.float32, shape=(ACTION_DIM,), finite=True
        )
        a = np.clip(a, -1.0, 1.0)
        v = a[:2]
        norm = float(np.hypot(v[0], v[1]))
        if norm > 1.0:
            v = v / norm
        old = self._gripper
        self._gripper = move_gripper(old, v * MAX_SPEED, self.cfg.wall)
        self._velocity = self._gripper - old
        self._grip_closed = bool(a[2] > 0)
        self._t += 1
        self._update_grasp()
        if self.cfg.wall and not self._route and WALL[0] <= self._gripper[0] <= WALL[2]:
            self._route = (
                "top" if self._gripper[1] < WALL[1] else "bottom" if self._gripper[1] > WALL[3] else ""
            )

        failure_reason = ""
        if self._hazard_active:
            inside = in_rect(self._gripper, HAZARD)
            if inside and not self._in_hazard and self._layout.hazard_armed:  # type: ignore[union-attr]
                failure_reason = "hazard"
            self._in_hazard = inside
        self._stage, self._progress, success, task_failure = self._judge()
        failure_reason = failure_reason or task_failure
        failure = bool(failure_reason) and not success
        terminated = success or failure
        truncated = not terminated and self._t >= self.max_steps
        self._done = terminated or truncated
        if success:
            self._progress = 1.0
        reward = (1.0 if success else -1.0 if failure else 0.0) - self.cfg.step_cost
        return self._obs(), float(reward), terminated, truncated, self._info(success, failure_reason)

    def _update_grasp(self) -> None:
        self._dropped = False
        h = self._holding
        if h >= 0:
            if not self._grip_closed:
                self._holding = -1  # released where it is
                self._blocks[h] = self._gripper
                return
            self._blocks[h] = self._gripper
            speed = float(np.hypot(*self._velocity)) / MAX_SPEED
            if self._drops and speed > self.cfg.drop_speed:
                p = self.cfg.drop_prob * (speed - self.cfg.drop_speed) / (1.0 - self.cfg.drop_speed)  # type: ignore[operator]
                if self.np_random.random() < p:
                    self._drop(h)
            return
        if not self._grip_closed:
            self._need_reopen = False
        elif not self._need_reopen:
            d = np.hypot(*(self._blocks - self._gripper).T)
            nearest = int(np.argmin(d))
            if d[nearest] <= GRASP_RADIUS:
                self._holding = nearest

    def _drop(self, h: int) -> None:
        """The block slips out: it lands a little off the gripper; the gripper must reopen."""
        lo, hi = WORKSPACE
        landed = np.clip(self._gripper + self.np_random.normal(0.0, 0.02, 2), lo, hi).astype(np.float32)
        self._blocks[h] = self._gripper if (self.cfg.wall and in_rect(landed, WALL)) else landed
        self._holding = -1
        self._need_reopen = True
        self._dropped = True

    def _obs(self) -> dict:
        images = self._renderer.render(
            self._gripper, self._grip_closed, self._blocks, self._layout.block_colors
        )  # type: ignore[union-attr]
        state = np.array(
            [
                self._gripper[0],
                self._gripper[1],
                min(max(self._velocity[0] / MAX_SPEED, -1.0), 1.0),  # clip float rounding at top speed
                min(max(self._velocity[1] / MAX_SPEED, -1.0), 1.0),
                float(self._grip_closed),
                float(self._holding >= 0),
            ],
            dtype=np.float32,
        )
        return {OBS_IMAGES: images, OBS_STATE: state, OBS_INSTRUCTION: self._instruction}

    def _object_positions(self) -> np.ndarray:
        layout: Layout = self._layout  # type: ignore[assignment]
        tb, tr = layout.target_block, layout.target_ring
        rows = [self._blocks[tb], layout.ring_pos[tr]]
        rows += [b for i, b in enumerate(self._blocks) if i != tb]
        rows += [r for i, r in enumerate(layout.ring_pos) if i != tr]
        if layout.button_pos is not None:
            rows.append(layout.button_pos)
        return np.stack(rows).astype(np.float32)

    def _info(self, success: bool, failure_reason: str) -> dict:
        return {
            "is_success": bool(success),
            "is_failure": bool(failure_reason) and not success,
            "progress": float(self._progress),
            "object_positions": self._object_positions(),
            "stage": int(self._stage),
            "failure_reason": failure_reason,
            "dropped": self._dropped,
            "route": self._route,
        }

    def sim_state(self) -> SimState:
        """A privileged snapshot for scripted experts and simulated operators (copies)."""
        layout = self._require_layout()
        return SimState(
            task=self.task_name,
            step=self._t,
            gripper=self._gripper.copy(),
            velocity=self._velocity.copy(),
            grip_closed=self._grip_closed,
            holding=self._holding,
            need_reopen=self._need_reopen,
            blocks=self._blocks.copy(),
            layout=layout,
            wall=self.cfg.wall,
            hazard_active=self._hazard_active,
            stage=self._stage,
            n_stages=self.n_stages,
            progress=float(self._progress),
            drop_speed=self.cfg.drop_speed,
            drops_enabled=self._drops,
            done=self._done,
        )

    @property
    def instruction(self) -> str:
        return self._instruction

    def render(self) -> np.ndarray:  # type: ignore[override]
        """The full top view as uint8 [S, S, 3], whatever cameras are configured."""
        layout = self._require_layout()
        saved = self._renderer.cameras
        self._renderer.cameras = ("top",)
        try:
            return self._renderer.render(self._gripper, self._grip_closed, self._blocks, layout.block_colors)[
                "top"
            ]
        finally:
            self._renderer.cameras = saved

    def close(self) -> None:
        self._layout = None
        self._done = True
