"""Executing action chunks: k of H actions per chunk, the next one requested ahead of time.

Timeline of one chunk (``k = execute``, ``L = lead_steps``)::

    step:    o          s                 s+k-L        s+k
             |obs used  |switched in      |next chunk  |next chunk due: switch, or hold
             |          |executes from index s-o        requested with the obs of s+k-L

A chunk computed from the observation of step ``o`` plans actions for steps ``o, o+1, ...``
(index ``i`` is for step ``o + i``), so a chunk switched in at step ``s`` starts at index
``s - o``: actions for steps that already passed are skipped (this is what keeps a late
chunk aligned with the world). If no fresh chunk is ready when the current one is due,
:meth:`ChunkExecutor.next` returns None and the safety layer holds. With
``blend_steps > 0`` the first steps of a new chunk are blended linearly with the old
chunk's plan for the same steps (a simple form of real-time chunking), so switching does
not jerk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """A chunk the policy produced."""

    actions: np.ndarray  # float32 [H, A], robot units
    version: int  # policy head version that produced it
    origin_step: int  # the control step whose observation it was computed from
    chunk_id: int  # per-episode counter
    noise: np.ndarray | None = None  # float32 [H, A], the flow's initial noise (when the policy said)


@dataclass(frozen=True)
class PlannedAction:
    """The policy's action for one step and where it came from."""

    action: np.ndarray  # float32 [A]
    chunk_id: int
    version: int
    index: int  # index into the chunk (for a blended action: the new chunk's)
    blended: bool = False
    chunk: Chunk | None = None  # the chunk it came from (the new one, for a blended action)


class ChunkExecutor:
    """Which action of which chunk runs at each control step. See the module docstring."""

    def __init__(self, execute: int, lead_steps: int = 0, blend_steps: int = 0) -> None:
        if execute < 1 or not 0 <= lead_steps <= execute or blend_steps < 0:
            raise ValueError(
                f"ChunkExecutor: execute={execute} >= 1, 0 <= lead_steps={lead_steps} <= execute, "
                f"blend_steps={blend_steps} >= 0 required"
            )
        self.execute, self.lead, self.blend = execute, lead_steps, blend_steps
        self.stale_dropped = 0
        self.reset()

    def reset(self) -> None:
        """Forget every chunk (a new episode, or resuming after a pause)."""
        self.current: Chunk | None = None
        self.previous: Chunk | None = None
        self.pending: Chunk | None = None
        self.switch_step = 0
        self.requested = False

    def _executed(self, step: int) -> int:
        return step - self.switch_step

    def wants_request(self, step: int) -> bool:
        """Should the observation of ``step`` be sent to the policy now?"""
        if self.requested or self.pending is not None:
            return False
        return self.current is None or self._executed(step) >= self.execute - self.lead

    def mark_requested(self) -> None:
        self.requested = True

    def request_failed(self) -> None:
        """The request produced no chunk (policy error): ask again at the next step."""
        self.requested = False

    def due(self, step: int) -> bool:
        """Does ``step`` need a fresh chunk (the current one is used up or there is none)?"""
        c = self.current
        if c is None:
            return True
        return self._executed(step) >= self.execute or step - c.origin_step >= len(c.actions)

    def offer(self, chunk: Chunk) -> None:
        """A fresh chunk from the policy; switched in when the current one is due."""
        if chunk.actions.ndim != 2:
            raise ValueError(f"chunk {chunk.chunk_id} has shape {chunk.actions.shape}, expected [H, A]")
        self.pending, self.requested = chunk, False

    def next(self, step: int) -> PlannedAction | None:
        """The policy's action for ``step``, or None when the due chunk is late (hold)."""
        if self.pending is not None and self.due(step):
            p, self.pending = self.pending, None
            if step - p.origin_step >= len(p.actions):
                self.stale_dropped += 1  # so late that its whole plan is in the past; ask again
            else:
                self.previous, self.current, self.switch_step = self.current, p, step
        c = self.current
        if c is None or self.due(step):
            return None
        i = step - c.origin_step
        action = c.actions[i]
        j, prev = step - self.switch_step, self.previous
        if self.blend and prev is not None and j < self.blend and step - prev.origin_step < len(prev.actions):
            w = (j + 1) / (self.blend + 1)  # linear ramp from the old plan to the new one
            old = prev.actions[step - prev.origin_step]
            return PlannedAction(
                (w * action + (1 - w) * old).astype(np.float32), c.chunk_id, c.version, i, True, c
            )
        return PlannedAction(np.asarray(action, np.float32), c.chunk_id, c.version, i, chunk=c)
