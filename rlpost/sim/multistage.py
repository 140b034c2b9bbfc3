"""``multistage``: grasp the named block, put it in the ring, then press the button.

Three subgoals in sequence, so progress is meaningful and mistakes are recoverable:
carrying faster than ``drop_speed`` (a fraction of top speed) may drop the block, which
lands near the gripper and must be grasped again (the gripper has to open first);
releasing it outside the ring means fetching it again. Releasing a block that was not
named in the ring fails the episode. As in ``tabletop``, the top gap crosses a hazard
that is armed in ``hazard_fail_prob`` of the episodes, and every step costs ``step_cost``.

Stages: 0 reach and grasp the named block, 1 carry it into the ring and release it,
2 press the button (close the gripper over it, holding nothing). Pressing the button
before the block is in the ring does nothing.
"""

from __future__ import annotations

import numpy as np

from rlpost.sim.base import SimRobot
from rlpost.sim.tabletop import APPROACH, sample_layout
from rlpost.sim.world import BUTTON_HALF, Layout, route_fraction


class MultistageEnv(SimRobot):
    """Pick, place, then press: "put the red block in the ring, then press the button"."""

    task_name = "multistage"
    n_stages = 3

    def _sample_layout(self, rng: np.random.Generator) -> Layout:
        c = self.cfg
        return sample_layout(rng, c.n_blocks, 1, True, c.hazard_fail_prob if self._hazard_active else 0.0)

    def _make_instruction(self, layout: Layout) -> str:
        return f"put the {layout.block_colors[layout.target_block]} block in the ring, then press the button"

    def _pressing(self) -> bool:
        b = self._layout.button_pos  # type: ignore[union-attr]
        g = self._gripper
        over = abs(g[0] - b[0]) <= BUTTON_HALF and abs(g[1] - b[1]) <= BUTTON_HALF  # type: ignore[index]
        return over and self._grip_closed and self._holding < 0

    def _judge(self) -> tuple[int, float, bool, str]:
        lay, wall = self._layout, self.cfg.wall
        tb, ring = lay.target_block, lay.ring_pos[0]  # type: ignore[union-attr]
        for b in range(len(self._blocks)):
            if b != tb and self._in_ring(b, 0):
                return self._stage, self._progress, False, "wrong_object"
        if self._in_ring(tb, 0):
            if self._pressing():
                return 2, 1.0, True, ""
            frac = route_fraction(self._gripper, ring, lay.button_pos, wall)  # type: ignore[union-attr, arg-type]
            return 2, (2.0 + APPROACH * frac) / 3.0, False, ""
        if self._holding == tb:
            frac = route_fraction(self._blocks[tb], lay.block_pos[tb], ring, wall)  # type: ignore[union-attr]
            return 1, (1.0 + APPROACH * frac) / 3.0, False, ""
        frac = route_fraction(self._gripper, lay.gripper_start, self._blocks[tb], wall)  # type: ignore[union-attr]
        return 0, APPROACH * frac / 3.0, False, ""
