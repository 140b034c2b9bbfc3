"""Geometry and privileged state of the built-in 2-D tabletop world.

Units: positions in the unit square [0, 1]^2, x to the right and y down (image order).
The gripper is a point that moves at most ``MAX_SPEED`` per step. An optional wall
between the blocks (left) and the rings (right) leaves two gaps: a wide one at the top,
which holds the hazard and is often the shorter way, and one at the bottom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SPEED = 0.07  # world units per step at |action| = 1
# The wall is wider than one step, so the gripper cannot tunnel through it.
WALL = (0.46, 0.32, 0.54, 0.84)  # x0, y0, x1, y1
HAZARD = (0.46, 0.0, 0.54, 0.32)  # fills the top gap
GAP_Y = {"top": 0.175, "bottom": 0.905}  # centre line of each gap
WORKSPACE = (0.03, 0.97)  # the gripper stays inside this square
CORRIDOR_HALF = 0.12  # half width of the strip around x = 0.5 where a crossing is under way

BLOCK_RADIUS = 0.045
RING_RADIUS = 0.085
GRASP_RADIUS = 0.05  # gripper to block centre, to grasp it
BUTTON_HALF = 0.05  # half side of the square button

# Saturated, well separated colours so a tiny encoder can localise each object at 64 px.
BLOCK_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 80, 240),
    "yellow": (245, 225, 30),
    "magenta": (220, 40, 220),
    "cyan": (30, 220, 230),
}
RING_COLORS: dict[str, tuple[int, int, int]] = {
    "orange": (255, 135, 0),
    "purple": (120, 40, 170),
    "pink": (255, 160, 200),
}


@dataclass(frozen=True)
class Layout:
    """What is where at the start of an episode (fixed for the episode except the blocks)."""

    block_pos: np.ndarray  # float32 [N, 2], initial block centres
    block_colors: tuple[str, ...]  # N colour names, keys of BLOCK_COLORS
    target_block: int  # index of the block the instruction names
    ring_pos: np.ndarray  # float32 [R, 2], ring centres
    ring_colors: tuple[str, ...]  # R colour names, keys of RING_COLORS
    target_ring: int  # index of the ring the instruction names
    button_pos: np.ndarray | None  # float32 [2], or None where the task has no button
    gripper_start: np.ndarray  # float32 [2]
    hazard_armed: bool  # entering the hazard this episode fails it (hidden from the policy)


@dataclass(frozen=True)
class SimState:
    """A privileged snapshot of the world, for scripted experts and simulated operators only."""

    task: str
    step: int
    gripper: np.ndarray  # float32 [2]
    velocity: np.ndarray  # float32 [2], last step's displacement, world units per step
    grip_closed: bool
    holding: int  # index of the held block, -1 if none
    need_reopen: bool  # the gripper lost its block and must open before it can grasp again
    blocks: np.ndarray  # float32 [N, 2]
    layout: Layout
    wall: bool
    hazard_active: bool  # the hazard is drawn and may be armed
    stage: int  # task stage (see the task's docstring)
    n_stages: int
    progress: float  # privileged progress in [0, 1]
    drop_speed: float  # carrying faster than this fraction of MAX_SPEED may drop the block
    drops_enabled: bool
    done: bool


def in_rect(p: np.ndarray, rect: tuple[float, float, float, float]) -> bool:
    """Whether point ``p`` lies inside the axis-aligned rectangle (x0, y0, x1, y1)."""
    return rect[0] <= p[0] <= rect[2] and rect[1] <= p[1] <= rect[3]


def side_of_wall(p: np.ndarray) -> int:
    """-1 left of the wall's centre line, +1 right of it."""
    return -1 if p[0] < 0.5 else 1


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(a[0] - b[0], a[1] - b[1]))


def route_fraction(p: np.ndarray, start: np.ndarray, goal: np.ndarray, wall: bool) -> float:
    """How much of the way from ``start`` to ``goal`` point ``p`` has covered, in [0, 1].

    With a wall, the best over the two routes (through either gap), so that moving along
    either route counts as progress, not only along the geometrically shorter one.
    """
    if not wall or side_of_wall(start) == side_of_wall(goal) == side_of_wall(p):
        return 1.0 - min(distance(p, goal) / max(distance(start, goal), 1e-3), 1.0)
    best = 0.0
    for gy in GAP_Y.values():
        gap = np.array([0.5, gy], dtype=np.float32)
        d_start = _via(start, gap, goal)
        best = max(best, 1.0 - min(_via(p, gap, goal) / max(d_start, 1e-3), 1.0))
    return best


def _via(p: np.ndarray, gap: np.ndarray, goal: np.ndarray) -> float:
    if side_of_wall(p) == side_of_wall(goal):
        return distance(p, goal)
    return distance(p, gap) + distance(gap, goal)


def shorter_gap(a: np.ndarray, b: np.ndarray) -> str:
    """The gap ("top" or "bottom") on the shorter way from a to b."""
    return min(GAP_Y, key=lambda g: _via(a, np.array([0.5, GAP_Y[g]], dtype=np.float32), b))


def next_waypoint(pos: np.ndarray, goal: np.ndarray, wall: bool, gap: str) -> np.ndarray:
    """Where to head next on the way to ``goal`` through gap ``gap`` ("top" or "bottom").

    Stateless, so an expert can take over from any state: on the far side of the wall
    head for the gap's mouth, inside the corridor cross it, on the goal's side go straight.
    """
    if not wall or side_of_wall(pos) == side_of_wall(goal):
        return goal
    gy = GAP_Y[gap]
    toward = side_of_wall(goal)  # +1: crossing left to right
    near_gap = abs(pos[0] - 0.5) <= CORRIDOR_HALF and abs(pos[1] - gy) <= 0.06
    if near_gap:
        return np.array([0.5 + toward * (CORRIDOR_HALF + 0.02), gy], dtype=np.float32)
    return np.array([0.5 - toward * (CORRIDOR_HALF - 0.02), gy], dtype=np.float32)


def move_gripper(pos: np.ndarray, delta: np.ndarray, wall: bool) -> np.ndarray:
    """Apply a displacement, sliding along the wall instead of entering it."""
    lo, hi = WORKSPACE
    new = np.clip(pos + delta, lo, hi).astype(np.float32)
    if not wall or not in_rect(new, WALL):
        return new
    # Blocked: keep whichever axis of the motion stays clear of the wall.
    for cand in ((new[0], pos[1]), (pos[0], new[1])):
        c = np.array(cand, dtype=np.float32)
        if not in_rect(c, WALL):
            return c
    return pos.astype(np.float32, copy=True)


def sample_points(
    rng: np.random.Generator,
    n: int,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    min_sep: float,
    avoid: list[np.ndarray] | None = None,
    avoid_sep: float = 0.0,
) -> np.ndarray:
    """``n`` points uniform in a box, pairwise at least ``min_sep`` apart (rejection sampling).

    Greedy placement can paint itself into a corner, so it starts over when stuck.
    """
    avoid = avoid or []
    for _ in range(100):
        pts: list[np.ndarray] = []
        for _ in range(200):
            p = np.array([rng.uniform(*x_range), rng.uniform(*y_range)], dtype=np.float32)
            if all(distance(p, q) >= min_sep for q in pts) and all(
                distance(p, q) >= avoid_sep for q in avoid
            ):
                pts.append(p)
                if len(pts) == n:
                    return np.stack(pts).astype(np.float32)
    # The boxes are sized so this does not happen for the counts SimConfig allows.
    raise RuntimeError(f"could not place {n} objects {min_sep} apart in {x_range} x {y_range}")
