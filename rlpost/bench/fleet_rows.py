"""The rows of `rlpost bench fleet` (see rlpost.bench.fleet_bench), computed from what was measured.

Pure functions and plain dataclasses, so the tables' arithmetic is tested without Ray.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlpost.policy import VLA


@dataclass(frozen=True)
class StepTiming:
    """How regularly the robots' recorded steps came (episode by episode)."""

    steps: int  # step intervals judged (each episode's first, which spans its first chunk, is left out)
    on_time: int  # intervals within (1 + tolerance) periods
    interval_p50_ms: float
    interval_p99_ms: float

    @property
    def on_time_share(self) -> float:
        return self.on_time / self.steps if self.steps else math.nan


def step_timing(episodes_t_ns: Sequence[np.ndarray], hz: float, tolerance: float) -> StepTiming:
    """On-time share of control steps from each episode's observation times.

    Args:
        episodes_t_ns: per episode, int64 [T] monotonic ns of each step's observation.
        hz: the target control rate.
        tolerance: a step is on time when it came at most ``(1 + tolerance) / hz`` after the previous.

    Returns:
        The counts and the p50 / p99 step interval in ms (NaN without intervals).
    """
    # The robot rests while an episode's first chunk is computed: interval 0 is not a control tick.
    gaps = [np.diff(np.asarray(t, dtype=np.int64))[1:] for t in episodes_t_ns if len(t) > 2]
    ms = np.concatenate(gaps) / 1e6 if gaps else np.empty(0)
    if not len(ms):
        return StepTiming(0, 0, math.nan, math.nan)
    limit_ms = 1e3 * (1 + tolerance) / hz
    return StepTiming(
        steps=len(ms),
        on_time=int((ms <= limit_ms).sum()),
        interval_p50_ms=float(np.percentile(ms, 50)),
        interval_p99_ms=float(np.percentile(ms, 99)),
    )


def bench_points(robots: Sequence[int], packings: Sequence[int]) -> list[tuple[int, int]]:
    """(robots, robots_per_actor) of every point: each size with each packing capped at it, no repeats."""
    out: list[tuple[int, int]] = []
    for n in sorted(set(robots)):
        for p in sorted({min(p, n) for p in packings}):
            out.append((n, p))
    return out


@dataclass(frozen=True)
class Publish:
    """One head published to the fleet, as the robots took it."""

    version: int
    ack_ms: float  # put + offer until every actor acknowledged
    acting_ms: dict[str, float]  # robot -> ms from the publish until it first planned with the head

    @property
    def all_acting_ms(self) -> float:
        """Until the last robot acted on it."""
        return max(self.acting_ms.values())


@dataclass(frozen=True)
class FleetPoint:
    """One fleet size and packing, measured."""

    robots: int
    robots_per_actor: int
    actors: int
    start_s: float  # until every actor answered status()
    practice_s: float
    episodes: int
    steps: int
    steps_per_s: float  # all robots, as the session counted them
    target_steps_per_s: float  # robots x hz
    timing: StepTiming
    publishes: list[Publish]
    head_bytes: int


def fleet_row(p: FleetPoint) -> dict[str, object]:
    """The fleet table's row of a point."""
    return {
        "robots": p.robots,
        "actors": p.actors,
        "robots/actor": p.robots_per_actor,
        "start_s": p.start_s,
        "steps/s": p.steps_per_s,
        "target": p.target_steps_per_s,
        "vs_target": p.steps_per_s / p.target_steps_per_s,
        "on_time": p.timing.on_time_share,
        "interval_p50_ms": p.timing.interval_p50_ms,
        "interval_p99_ms": p.timing.interval_p99_ms,
        "steps": p.steps,
    }


def weights_row(p: FleetPoint) -> dict[str, object]:
    """The weights table's row of a point: medians over its publishes, and the worst publish."""
    every = [ms for pub in p.publishes for ms in pub.acting_ms.values()]
    return {
        "robots": p.robots,
        "actors": p.actors,
        "robots/actor": p.robots_per_actor,
        "head_kb": p.head_bytes / 1024,
        "ack_ms": statistics.median(pub.ack_ms for pub in p.publishes),
        "robot_acting_p50_ms": statistics.median(every),
        "all_acting_ms": statistics.median(pub.all_acting_ms for pub in p.publishes),
        "all_acting_max_ms": max(pub.all_acting_ms for pub in p.publishes),
        "publishes": len(p.publishes),
    }


def head_and_full_bytes(vla: VLA) -> tuple[int, int]:
    """Bytes a publish ships (the head's arrays) and bytes of the whole model (every tensor)."""
    head = sum(a.nbytes for a in vla.head_state().values())
    full = sum(t.numel() * t.element_size() for t in vla.state_dict().values())
    return head, full


def bytes_row(name: str, vla: VLA) -> dict[str, object]:
    """The bytes table's row of a policy."""
    head, full = head_and_full_bytes(vla)
    return {
        "policy": name,
        "backbone_params": sum(p.numel() for p in vla.backbone.parameters()),
        "head_params": sum(p.numel() for p in vla.head_parameters()),
        "head_kb": head / 1024,
        "full_kb": full / 1024,
        "head/full": head / full,
    }
