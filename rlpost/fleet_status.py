"""What the operator sees of a practice session: per-robot counters over recent episodes.

Plain bookkeeping (no Ray, no role packages): :class:`FleetTracker` is fed one
:class:`EpisodeOutcome` per finished episode and the robots' live status, and renders the
status table the terminal shows and the summary rows the session ends with.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field
from typing import Any

from rlpost.evaluation import wilson_interval
from rlpost.report import format_table


@dataclass(frozen=True)
class EpisodeOutcome:
    """One finished practice episode as the session counts it."""

    robot_id: str
    outcome: str  # success | failure | timeout | aborted
    steps: int
    intervention_steps: int
    takeovers: int  # take_over commands applied in the episode
    duration_s: float  # robot time


@dataclass
class RobotLive:
    """The latest live status of one robot (from its actor)."""

    state: str = "starting"
    policy_version: int = -1
    weight_loads: int = 0
    events: dict[str, int] = field(default_factory=dict)


class FleetTracker:
    """Counts episodes per robot; success and interventions over the last ``window`` episodes."""

    def __init__(self, robot_ids: list[str], window: int = 20) -> None:
        self.window = window
        self.recent: dict[str, collections.deque[EpisodeOutcome]] = {
            r: collections.deque(maxlen=window) for r in robot_ids
        }
        self.totals: dict[str, collections.Counter[str]] = {r: collections.Counter() for r in robot_ids}
        self.live: dict[str, RobotLive] = {r: RobotLive() for r in robot_ids}
        self.all: list[EpisodeOutcome] = []
        self.t0 = time.monotonic()

    # -- feeding -----------------------------------------------------------------------------------
    def add(self, ep: EpisodeOutcome) -> None:
        self.recent[ep.robot_id].append(ep)
        t = self.totals[ep.robot_id]
        t["episodes"] += 1
        t["steps"] += ep.steps
        t["intervention_steps"] += ep.intervention_steps
        t["takeovers"] += ep.takeovers
        t[ep.outcome] += 1
        self.all.append(ep)

    def set_live(self, robot_id: str, live: RobotLive) -> None:
        self.live[robot_id] = live

    # -- reading ------------------------------------------------------------------------------------
    @property
    def episodes(self) -> int:
        return len(self.all)

    @property
    def steps(self) -> int:
        return sum(e.steps for e in self.all)

    @property
    def robot_hours(self) -> float:
        return sum(e.duration_s for e in self.all) / 3600.0

    def robot_row(self, robot_id: str) -> dict[str, Any]:
        rec, tot, live = self.recent[robot_id], self.totals[robot_id], self.live[robot_id]
        n = len(rec)
        return {
            "robot": robot_id,
            "state": live.state,
            "episodes": tot["episodes"],
            f"success@{self.window}": sum(e.outcome == "success" for e in rec) / n if n else float("nan"),
            "takeovers/ep": sum(e.takeovers for e in rec) / n if n else float("nan"),
            "human_steps": sum(e.intervention_steps for e in rec) / max(1, sum(e.steps for e in rec)),
            "version": live.policy_version,
            "loads": live.weight_loads,
        }

    def status_table(self, learner: dict[str, Any], title: str = "") -> str:
        rows = [self.robot_row(r) for r in self.recent]
        wall = time.monotonic() - self.t0
        head = (
            f"{title}  {wall:.0f} s  episodes {self.episodes}  steps {self.steps} "
            f"({self.steps / wall if wall > 0 else 0:.0f}/s)  robot-hours {self.robot_hours:.3f}"
        )
        learner_line = "  ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in learner.items()
        )
        return format_table(rows, title=head) + f"\nlearner: {learner_line}"

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per robot plus an "all" row: whole-session success (Wilson CI), takeovers, steps."""
        rows = []
        for rid in [*self.recent, "all"]:
            eps = self.all if rid == "all" else [e for e in self.all if e.robot_id == rid]
            n = len(eps)
            succ = sum(e.outcome == "success" for e in eps)
            lo, hi = wilson_interval(succ, n)
            hours = sum(e.duration_s for e in eps) / 3600.0
            rows.append(
                {
                    "robot": rid,
                    "episodes": n,
                    "success": succ / n if n else float("nan"),
                    "ci95": f"[{lo:.2f}, {hi:.2f}]",
                    "succ/hour": succ / hours if hours > 0 else float("nan"),
                    "takeovers/ep": sum(e.takeovers for e in eps) / n if n else float("nan"),
                    "human_steps": sum(e.intervention_steps for e in eps) / max(1, sum(e.steps for e in eps)),
                    "steps": sum(e.steps for e in eps),
                    "version": self.live[rid].policy_version if rid in self.live else "",
                }
            )
        return rows


def rate(count: float, seconds: float) -> float:
    """count / seconds, NaN for an empty interval."""
    return count / seconds if seconds > 0 else math.nan
