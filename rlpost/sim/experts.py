"""Scripted experts for the built-in tasks: demos for pretraining, actions for takeovers.

An expert reads the sim's privileged :class:`SimState` and re-plans from it every step,
so it can take over from any state (a dropped block, a wrong block in hand). Each demo
is either clean or one kind of imperfect (see :class:`ExpertConfig`); the kind is
reported by :attr:`Expert.info` so curation and tests can check it. Imperfect demos
still succeed (they cost time); failures come only from action noise.

Typical use::

    expert = make_expert(robot, ExpertConfig(imperfect_rate=0.4))
    obs, info = robot.reset(seed=s)
    demo = expert.reset(seed=s)            # DemoInfo(kind="slow", route="bottom", ...)
    while not done:
        obs, r, term, trunc, info = robot.step(expert.act())
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlpost.sim.base import ACTION_DIM, SimRobot
from rlpost.sim.config import ExpertConfig
from rlpost.sim.world import (
    BUTTON_HALF,
    GRASP_RADIUS,
    MAX_SPEED,
    RING_RADIUS,
    SimState,
    distance,
    next_waypoint,
    shorter_gap,
)

RELEASE_RADIUS = 0.025  # release the block this close to the ring's centre
DECOY_HOVER_STEPS = 2  # a wrong-object-first demo lingers this long at the wrong block
DECOY_TIMEOUT_STEPS = 40  # and gives up on it after this many steps whatever happens
# A missed_grasp demo closes the gripper this far from the named block (out of grasp reach,
# and wider than one step so an approach at top speed cannot skip the band), holds it
# closed and still for MISS_STEPS, then opens and finishes the approach.
MISS_BAND = (1.6 * GRASP_RADIUS, 1.6 * GRASP_RADIUS + MAX_SPEED + 0.01)
MISS_STEPS = 3


@dataclass(frozen=True)
class DemoInfo:
    """What kind of demo the expert is giving this episode."""

    kind: str  # "clean", or one of IMPERFECTION_KINDS
    route: str  # gap taken round the wall: "top" (the hazard's), "bottom", or "none" without a wall
    decoy_block: int  # block visited first by a wrong_object_first demo, else -1
    seed: int | None

    @property
    def imperfect(self) -> bool:
        return self.kind != "clean"

    def as_tags(self) -> dict[str, str]:
        """Free-text tags for ``EpisodeMeta.extra``."""
        return {"demo_kind": self.kind, "demo_route": self.route}


class Expert:
    """A waypoint controller over the sim's privileged state, with noise and imperfections."""

    def __init__(self, robot: SimRobot, cfg: ExpertConfig | None = None) -> None:
        if not isinstance(robot, SimRobot):
            raise TypeError(
                f"scripted experts need a built-in sim robot (with sim_state()), got {type(robot).__name__}"
            )
        self.robot = robot
        self.cfg = cfg or ExpertConfig()
        self._info: DemoInfo | None = None

    @property
    def info(self) -> DemoInfo:
        if self._info is None:
            raise RuntimeError("call Expert.reset() after robot.reset() before using the expert")
        return self._info

    def reset(self, seed: int | None = None, kind: str | None = None) -> DemoInfo:
        """Start a demo for the episode the robot has just reset to.

        Args:
            seed: seeds the expert's own noise and choices (independent of the env's RNG).
            kind: force a demo kind ("clean" or an imperfection); ``None`` draws it from the config.
        """
        cfg = self.cfg
        self._rng = np.random.default_rng(seed)
        state = self.robot.sim_state()
        n_blocks = len(state.blocks)
        kinds = tuple(k for k in cfg.imperfect_kinds if k != "wrong_object_first" or n_blocks > 1)
        if kind is None:
            imperfect = bool(kinds) and self._rng.random() < cfg.imperfect_rate
            kind = str(self._rng.choice(kinds)) if imperfect else "clean"
        elif kind != "clean" and kind not in cfg.imperfect_kinds:
            raise ValueError(f"demo kind {kind!r} is not 'clean' or one of {list(cfg.imperfect_kinds)}")
        if kind == "wrong_object_first" and n_blocks < 2:
            raise ValueError("a wrong_object_first demo needs at least two blocks")
        decoy = -1
        if kind == "wrong_object_first":
            others = [i for i in range(n_blocks) if i != state.layout.target_block]
            decoy = int(self._rng.choice(others))
        self._info = DemoInfo(kind=kind, route=self._choose_route(state), decoy_block=decoy, seed=seed)
        self._decoy_left = DECOY_TIMEOUT_STEPS if decoy >= 0 else 0
        self._decoy_hover = 0
        self._pause_left = 0
        self._miss_pending = kind == "missed_grasp"
        self._miss_left = 0
        return self._info

    def _choose_route(self, state: SimState) -> str:
        if not state.wall:
            return "none"
        route, lay = self.cfg.route, state.layout
        if route == "random":
            return "top" if self._rng.random() < 0.5 else "bottom"
        if not state.hazard_active:  # both gaps are safe: take the shorter way for the carry
            return shorter_gap(lay.block_pos[lay.target_block], lay.ring_pos[lay.target_ring])
        if route == "oracle":  # privileged: the hazard's gap only when it is not armed
            return "bottom" if lay.hazard_armed else "top"
        return "bottom" if route == "safe" else "top"

    def act(self, state: SimState | None = None) -> np.ndarray:
        """The next action, float32 [3] in [-1, 1], for ``state`` (default: the robot's now)."""
        info = self.info
        state = state if state is not None else self.robot.sim_state()
        goal, grip, speed = self._intent(state)
        if info.kind == "slow":
            speed *= self.cfg.slow_factor
        elif info.kind == "hesitant" and self._hesitate():
            speed = 0.0
        gap = info.route if info.route != "none" else "top"
        wp = next_waypoint(state.gripper, goal, state.wall, gap)
        to = wp - state.gripper
        dist = float(np.hypot(to[0], to[1]))
        action = np.zeros(ACTION_DIM, dtype=np.float32)
        if dist > 1e-6 and speed > 0:
            # Slow down on arrival rather than overshoot the waypoint.
            step = min(speed, dist / MAX_SPEED)
            action[:2] = to / dist * step
        action[2] = 1.0 if grip else -1.0
        if self.cfg.noise > 0:
            action += self._rng.normal(0.0, self.cfg.noise, ACTION_DIM).astype(np.float32)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _hesitate(self) -> bool:
        if self._pause_left > 0:
            self._pause_left -= 1
            return True
        if self._rng.random() < self.cfg.pause_prob:
            lo, hi = self.cfg.pause_steps
            self._pause_left = int(self._rng.integers(lo, hi + 1)) - 1
            return True
        return False

    def _intent(self, s: SimState) -> tuple[np.ndarray, bool, float]:
        """(where to go, gripper closed?, speed as a fraction of top speed) for state ``s``."""
        lay = s.layout
        tb = lay.target_block
        ring = lay.ring_pos[lay.target_ring]
        free_speed = self.cfg.speed
        carry_speed = free_speed
        if s.drops_enabled:
            carry_speed = min(free_speed, s.drop_speed - self.cfg.carry_margin)

        if self._decoy_left > 0 and s.holding < 0:  # a wrong_object_first demo's detour
            self._decoy_left -= 1
            decoy = s.blocks[self.info.decoy_block]
            if distance(s.gripper, decoy) < 0.03:
                self._decoy_hover += 1
                if self._decoy_hover >= DECOY_HOVER_STEPS:
                    self._decoy_left = 0
            return decoy, False, free_speed

        if s.holding >= 0 and s.holding != tb:  # wrong block in hand: put it down away from the rings
            near_ring = [r for r in lay.ring_pos if distance(s.gripper, r) < RING_RADIUS + 0.06]
            if near_ring:
                away = s.gripper + (s.gripper - near_ring[0]) * 2.0
                return away.astype(np.float32), True, carry_speed
            return s.gripper, False, 0.0

        if s.holding == tb:
            release = distance(s.gripper, ring) <= RELEASE_RADIUS
            return ring, not release, carry_speed

        block = s.blocks[tb]
        block_placed = distance(block, ring) <= RING_RADIUS
        if lay.button_pos is not None and block_placed:
            b = lay.button_pos
            over = (
                abs(s.gripper[0] - b[0]) <= 0.6 * BUTTON_HALF
                and abs(s.gripper[1] - b[1]) <= 0.6 * BUTTON_HALF
            )
            return b, over, free_speed
        if self._miss_pending:  # a missed_grasp demo's early close (stage 0 only)
            if self._miss_left == 0 and MISS_BAND[0] <= distance(s.gripper, block) <= MISS_BAND[1]:
                self._miss_left = MISS_STEPS
            if self._miss_left > 0:
                self._miss_left -= 1
                self._miss_pending = self._miss_left > 0
                return s.gripper, True, 0.0
        at_block = distance(s.gripper, block) <= 0.7 * GRASP_RADIUS
        return block, at_block and not s.need_reopen, free_speed


def make_expert(robot: SimRobot, cfg: ExpertConfig | None = None) -> Expert:
    """The scripted expert for a built-in sim robot (every built-in task shares one planner).

    Raises:
        TypeError: ``robot`` is not a built-in sim robot (a peer or hardware robot has no
            privileged state to script from).
    """
    return Expert(robot, cfg)
