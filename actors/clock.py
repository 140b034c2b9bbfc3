"""Clocks for the control loop: wall time (realtime) or simulated time (as fast as possible).

The loop's logic is the same with either; only waiting differs. With a
:class:`SimulatedClock`, time advances by exactly one control period per step, so an
episode's timestamps (and the steps at which chunks switch) are reproducible.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic time in ns and a way to wait for a moment."""

    realtime: bool

    def now_ns(self) -> int: ...

    def wait_until(self, t_ns: int) -> None: ...


class RealtimeClock:
    """``time.monotonic_ns``; waits by sleeping (no busy-wait: the cores are shared)."""

    realtime = True

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def wait_until(self, t_ns: int) -> None:
        remaining = t_ns - time.monotonic_ns()
        if remaining > 0:
            time.sleep(remaining / 1e9)


class SimulatedClock:
    """Time that moves only when the loop waits: a wait jumps straight to its deadline."""

    realtime = False

    def __init__(self, start_ns: int | None = None) -> None:
        self._now = time.monotonic_ns() if start_ns is None else start_ns

    def now_ns(self) -> int:
        return self._now

    def wait_until(self, t_ns: int) -> None:
        self._now = max(self._now, t_ns)
