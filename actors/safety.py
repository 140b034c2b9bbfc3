"""The safety filter: the last word on every action before it reaches the robot.

Pure and deterministic: ``filter(proposed, state)`` returns the action to send and the
events it caused. In order it: holds when the e-stop is latched or nothing usable was
proposed (no chunk ready, NaN/Inf from the policy: never sent to the robot), clips to
the robot's action bounds, applies workspace limits, and limits the per-step change.
The e-stop latch is cleared only by :meth:`SafetyFilter.clear_estop` (an explicit
operator command), never by a reset or a new episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from actors.config import SafetyConfig
from rlpost.schema import RobotSpec

SafetyEventKind = Literal[
    "estop_hold",  # e-stop latched: holding
    "no_action",  # nothing to execute (late chunk, person holds control but sent nothing): holding
    "nonfinite",  # NaN/Inf proposed: holding, never sent (an error)
    "clipped",  # outside the action bounds
    "workspace",  # would leave the workspace
    "rate_limited",  # changed more than max_delta in one step
]


@dataclass(frozen=True)
class SafetyEvent:
    """Something the filter changed, and why."""

    kind: SafetyEventKind
    detail: str = ""


class SafetyFilter:
    """Clip, workspace limits, rate limit, hold on bad input, e-stop latch. See the module docstring."""

    def __init__(self, spec: RobotSpec, cfg: SafetyConfig | None = None) -> None:
        """Args:
        spec: the robot's declared bounds (and its max_delta, unless the config overrides it).
        cfg: the filter's settings.

        Raises:
            ValueError: a config that does not fit the robot (dims out of range, wrong lengths).
        """
        self.spec, self.cfg = spec, cfg or SafetyConfig()
        a = spec.action_dim
        self.low, self.high = spec.action_low.astype(np.float32), spec.action_high.astype(np.float32)
        if self.cfg.max_delta:
            if len(self.cfg.max_delta) not in (1, a):
                raise ValueError(f"safety.max_delta has {len(self.cfg.max_delta)} entries, robot has A={a}")
            self.max_delta: np.ndarray | None = np.broadcast_to(
                np.asarray(self.cfg.max_delta, np.float32), (a,)
            ).copy()
        else:
            self.max_delta = None if spec.max_delta is None else spec.max_delta.astype(np.float32)
        bad = [d for d in self.cfg.hold_keep_dims if not 0 <= d < a]
        ws = self.cfg.workspace
        bad += [d for d in ws.action_dims if not 0 <= d < a]
        bad_state = [d for d in ws.state_dims if not 0 <= d < spec.state_dim]
        if bad or bad_state:
            raise ValueError(
                f"safety config names action dims {bad} / state dims {bad_state} the robot does not have "
                f"(A={a}, S={spec.state_dim})"
            )
        self._ws_s = np.asarray(ws.state_dims, np.int64)
        self._ws_a = np.asarray(ws.action_dims, np.int64)
        self._ws_lo, self._ws_hi = np.asarray(ws.low, np.float32), np.asarray(ws.high, np.float32)
        self._last: np.ndarray | None = None
        self._estop_by = ""

    # -- e-stop latch ----------------------------------------------------------------------------
    @property
    def estopped(self) -> bool:
        return bool(self._estop_by)

    def estop(self, by: str) -> None:
        """Latch the e-stop (idempotent); ``by`` names who pressed it."""
        self._estop_by = self._estop_by or by or "unknown"

    def clear_estop(self) -> None:
        """Release the latch: only an explicit operator command calls this."""
        self._estop_by = ""

    # -- filtering ---------------------------------------------------------------------------------
    def reset(self, action: np.ndarray | None = None) -> None:
        """Start an episode; ``action`` is the robot's resting command if known (else hold = zeros)."""
        self._last = None if action is None else np.asarray(action, np.float32).copy()

    def hold_action(self) -> np.ndarray:
        """What holding position sends now (see SafetyConfig.hold)."""
        last = self._last if self._last is not None else np.zeros(self.spec.action_dim, np.float32)
        if self.cfg.hold == "last":
            out = last.copy()
        else:
            out = np.zeros_like(last)
            keep = list(self.cfg.hold_keep_dims)
            out[keep] = last[keep]
        return np.clip(out, self.low, self.high).astype(np.float32)

    def filter(
        self, proposed: np.ndarray | None, state: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[SafetyEvent]]:
        """The action to send for ``proposed`` (None: nothing ready), and the events it caused.

        Args:
            proposed: float32 [A] from the policy or a person, robot units; None if none is ready.
            state: float32 [S], the latest observed state (for workspace limits).

        Returns:
            (float32 [A] finite action within bounds, events).
        """
        events: list[SafetyEvent] = []
        if self.estopped:
            events.append(SafetyEvent("estop_hold", f"latched by {self._estop_by}"))
            return self._commit(self.hold_action()), events
        if proposed is None:
            events.append(SafetyEvent("no_action", "holding: no action was ready"))
            return self._commit(self.hold_action()), events
        a = np.asarray(proposed, dtype=np.float32).reshape(-1)
        if a.shape != (self.spec.action_dim,):
            raise ValueError(
                f"safety filter: action has shape {a.shape}, robot expects ({self.spec.action_dim},)"
            )
        if not np.all(np.isfinite(a)):
            bad = np.flatnonzero(~np.isfinite(a)).tolist()
            events.append(SafetyEvent("nonfinite", f"NaN/Inf in action dims {bad}; holding"))
            return self._commit(self.hold_action()), events
        clipped = np.clip(a, self.low, self.high)
        if not np.array_equal(clipped, a):
            events.append(SafetyEvent("clipped", f"dims {np.flatnonzero(clipped != a).tolist()}"))
        a = clipped
        if self._ws_s.size and state is not None:
            a = self._workspace(a, np.asarray(state, np.float32), events)
        if self.max_delta is not None and self._last is not None:
            step = np.clip(a - self._last, -self.max_delta, self.max_delta)
            limited = self._last + step
            if not np.allclose(limited, a, rtol=0, atol=0):
                events.append(SafetyEvent("rate_limited", f"dims {np.flatnonzero(limited != a).tolist()}"))
            a = np.clip(limited, self.low, self.high)
        return self._commit(a.astype(np.float32)), events

    def _workspace(self, a: np.ndarray, state: np.ndarray, events: list[SafetyEvent]) -> np.ndarray:
        a = a.copy()
        if self.cfg.workspace.mode == "position":
            target = np.clip(a[self._ws_a], self._ws_lo, self._ws_hi)
            changed = target != a[self._ws_a]
            a[self._ws_a] = target
        else:
            pos, vel = state[self._ws_s], a[self._ws_a]
            out = ((pos <= self._ws_lo) & (vel < 0)) | ((pos >= self._ws_hi) & (vel > 0))
            changed = out
            a[self._ws_a[out]] = 0.0
        if np.any(changed):
            events.append(SafetyEvent("workspace", f"action dims {self._ws_a[changed].tolist()} limited"))
        return a

    def _commit(self, a: np.ndarray) -> np.ndarray:
        self._last = a.copy()
        return a
