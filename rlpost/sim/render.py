"""Top-down numpy rendering of the tabletop world; no OpenGL, a few microseconds a frame.

The static scene (table, wall, hazard, rings, button) is drawn once per episode into a
padded canvas; each frame copies it and stamps the blocks and the gripper with
precomputed stencils. The padding lets the wrist camera crop round the gripper anywhere.
"""

from __future__ import annotations

import math

import numpy as np

from rlpost.sim.world import (
    BLOCK_COLORS,
    BLOCK_RADIUS,
    BUTTON_HALF,
    HAZARD,
    RING_COLORS,
    RING_RADIUS,
    WALL,
    Layout,
)

OUTSIDE = (45, 45, 60)  # beyond the table's edge (seen by the wrist camera)
TABLE = (115, 115, 115)
WALL_COLOR = (150, 100, 55)
HAZARD_COLOR = (10, 10, 10)
BUTTON_COLOR = (190, 170, 255)
GRIPPER_COLOR = (255, 255, 255)


def _disc(radius_px: float) -> np.ndarray:
    r = math.ceil(radius_px)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (xx * xx + yy * yy) <= radius_px * radius_px


def _ring(outer_px: float, width_px: float) -> np.ndarray:
    r = math.ceil(outer_px)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    d2 = xx * xx + yy * yy
    return (d2 <= outer_px * outer_px) & (d2 >= (outer_px - width_px) ** 2)


def _square_outline(half_px: int) -> np.ndarray:
    m = np.ones((2 * half_px + 1, 2 * half_px + 1), dtype=bool)
    m[1:-1, 1:-1] = False
    return m


class Renderer:
    """Draws the world into ``{camera: uint8 [S, S, 3]}`` for cameras "top" and "wrist"."""

    def __init__(self, size: int, cameras: tuple[str, ...], wrist_zoom: int = 2) -> None:
        self.size = size
        self.cameras = cameras
        self.zoom = wrist_zoom
        self.crop = size // wrist_zoom
        self.block_stencil = _disc(BLOCK_RADIUS * size)
        self.ring_stencil = _ring(RING_RADIUS * size, max(1.5, 0.025 * size))
        self.grip_open = _square_outline(max(2, round(0.055 * size)))
        self.grip_closed = _square_outline(max(1, round(0.035 * size)))
        margin = max(s.shape[0] for s in (self.block_stencil, self.ring_stencil, self.grip_open)) // 2 + 1
        self.pad = max(margin, self.crop // 2 + 1) if "wrist" in cameras else margin
        full = size + 2 * self.pad
        self.background = np.empty((full, full, 3), dtype=np.uint8)
        self.canvas = np.empty_like(self.background)

    def _px(self, p: np.ndarray) -> tuple[int, int]:
        """World point -> (row, col) in the padded canvas."""
        s = self.size
        return int(p[1] * s) + self.pad, int(p[0] * s) + self.pad

    def _rect(
        self, img: np.ndarray, rect: tuple[float, float, float, float], color: tuple[int, int, int]
    ) -> None:
        s, p = self.size, self.pad
        x0, y0, x1, y1 = (round(v * s) for v in rect)
        img[y0 + p : y1 + p, x0 + p : x1 + p] = color

    @staticmethod
    def _stamp(
        img: np.ndarray, center: tuple[int, int], stencil: np.ndarray, color: tuple[int, int, int]
    ) -> None:
        h = stencil.shape[0] // 2
        r, c = center
        img[r - h : r + h + 1, c - h : c + h + 1][stencil] = color

    def set_scene(self, layout: Layout, wall: bool, hazard: bool) -> None:
        """Draw the parts that do not move this episode."""
        bg, s, p = self.background, self.size, self.pad
        bg[:] = OUTSIDE
        bg[p : p + s, p : p + s] = TABLE
        if wall:
            self._rect(bg, WALL, WALL_COLOR)
        if hazard:
            self._rect(bg, HAZARD, HAZARD_COLOR)
        for pos, name in zip(layout.ring_pos, layout.ring_colors, strict=True):
            self._stamp(bg, self._px(pos), self.ring_stencil, RING_COLORS[name])
        if layout.button_pos is not None:
            b = layout.button_pos
            self._rect(
                bg,
                (b[0] - BUTTON_HALF, b[1] - BUTTON_HALF, b[0] + BUTTON_HALF, b[1] + BUTTON_HALF),
                BUTTON_COLOR,
            )

    def render(
        self, gripper: np.ndarray, grip_closed: bool, blocks: np.ndarray, block_colors: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """One frame per camera; arrays are fresh copies the caller may keep."""
        img = self.canvas
        np.copyto(img, self.background)
        for pos, name in zip(blocks, block_colors, strict=True):
            self._stamp(img, self._px(pos), self.block_stencil, BLOCK_COLORS[name])
        g = self._px(gripper)
        self._stamp(img, g, self.grip_closed if grip_closed else self.grip_open, GRIPPER_COLOR)
        out: dict[str, np.ndarray] = {}
        s, p = self.size, self.pad
        for cam in self.cameras:
            if cam == "top":
                out[cam] = img[p : p + s, p : p + s].copy()
            else:  # wrist: a zoomed crop centred on the gripper
                c, z = self.crop, self.zoom
                r0, c0 = g[0] - c // 2, g[1] - c // 2
                crop = img[r0 : r0 + c, c0 : c0 + c]
                out[cam] = np.broadcast_to(crop[:, None, :, None, :], (c, z, c, z, 3)).reshape(s, s, 3)
        return out
