"""``tabletop``: put the named block in the (named) ring.

Blocks start left of the wall, rings right of it. The instruction names one block by
colour (and, with ``n_targets > 1``, one ring), so a policy that ignores language picks
the wrong block about ``(n_blocks - 1) / n_blocks`` of the time, and releasing a wrong
block in a ring (or the right block in a wrong ring) fails the episode.

Choices a policy can get right by practice: the top gap through the wall (often the
shorter way) crosses a hazard that is armed in ``hazard_fail_prob`` of the
episodes (whether it is armed cannot be seen); the bottom gap is safe but usually
longer; every step costs ``step_cost``.

Stages: 0 reach and grasp the named block, 1 carry it to the named ring and release it.
"""

from __future__ import annotations

import numpy as np

from rlpost.sim.base import SimRobot
from rlpost.sim.world import BLOCK_COLORS, RING_COLORS, Layout, route_fraction, sample_points

# Spawn boxes (x range, y range): blocks and gripper left of the wall, rings and button right.
LEFT_X, LEFT_Y = (0.08, 0.38), (0.12, 0.88)
RIGHT_X, RIGHT_Y = (0.66, 0.9), (0.15, 0.85)
BLOCK_SEP, RING_SEP = 0.15, 0.22
# Share of a stage's progress earned by getting there; the rest by finishing it (grasp,
# release, press), so progress reaches 1 only on success.
APPROACH = 0.9


def sample_layout(
    rng: np.random.Generator, n_blocks: int, n_targets: int, with_button: bool, hazard_fail_prob: float
) -> Layout:
    """Draw colours, positions and the hazard for one episode from the env's RNG."""
    colors = tuple(str(c) for c in rng.permutation(list(BLOCK_COLORS))[:n_blocks])
    ring_colors = (
        ("orange",)
        if n_targets == 1
        else tuple(str(c) for c in rng.permutation(list(RING_COLORS))[:n_targets])
    )
    gripper = sample_points(rng, 1, LEFT_X, LEFT_Y, 0.0)[0]
    blocks = sample_points(rng, n_blocks, LEFT_X, LEFT_Y, BLOCK_SEP, avoid=[gripper], avoid_sep=0.08)
    n_right = n_targets + int(with_button)
    right = sample_points(rng, n_right, RIGHT_X, RIGHT_Y, RING_SEP)
    return Layout(
        block_pos=blocks,
        block_colors=colors,
        target_block=int(rng.integers(n_blocks)),
        ring_pos=right[:n_targets],
        ring_colors=ring_colors,
        target_ring=int(rng.integers(n_targets)),
        button_pos=right[n_targets] if with_button else None,
        gripper_start=gripper,
        hazard_armed=bool(rng.random() < hazard_fail_prob),
    )


class TabletopEnv(SimRobot):
    """Language-conditioned pick and place: "put the red block in the ring"."""

    task_name = "tabletop"
    n_stages = 2

    def _sample_layout(self, rng: np.random.Generator) -> Layout:
        c = self.cfg
        return sample_layout(
            rng, c.n_blocks, c.n_targets, False, c.hazard_fail_prob if self._hazard_active else 0.0
        )

    def _make_instruction(self, layout: Layout) -> str:
        block = layout.block_colors[layout.target_block]
        if len(layout.ring_colors) == 1:
            return f"put the {block} block in the ring"
        return f"put the {block} block in the {layout.ring_colors[layout.target_ring]} ring"

    def _judge(self) -> tuple[int, float, bool, str]:
        lay, wall = self._layout, self.cfg.wall
        tb, tr = lay.target_block, lay.target_ring  # type: ignore[union-attr]
        for b in range(len(self._blocks)):
            for r in range(len(lay.ring_pos)):  # type: ignore[union-attr]
                if self._in_ring(b, r):
                    if b == tb and r == tr:
                        return 1, 1.0, True, ""
                    reason = "wrong_target" if b == tb else "wrong_object"
                    return self._stage, self._progress, False, reason
        if self._holding == tb:
            frac = route_fraction(self._blocks[tb], lay.block_pos[tb], lay.ring_pos[tr], wall)  # type: ignore[union-attr]
            return 1, 0.5 + 0.5 * APPROACH * frac, False, ""
        frac = route_fraction(self._gripper, lay.gripper_start, self._blocks[tb], wall)  # type: ignore[union-attr]
        return 0, 0.5 * APPROACH * frac, False, ""
