"""Practice episodes for the comparison harness: many simulated robots in lockstep, one batched
policy call per chunk, optional simulated operators, every step recorded into an episode store.

The product's practice runs each robot in its own Ray actor at the robot's rate (rlpost.session);
a comparison of seven methods x seeds x tasks cannot afford that on a CPU, and needs none of it:
the same policy, operator, store schema and learner see the same data, only faster. The loop
itself is the rollout engine's (rlpost.rollout).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from rlpost.data.episode_store import EpisodeStore
from rlpost.rollout import ChunkActor, ChunkFn, EpisodePlan, EpisodeRecorder, run_and_close
from rlpost.sim import SimConfig, make_robot
from rlpost.sim.config import SimOperatorConfig
from rlpost.sim.operator import SimulatedOperator


@dataclass(frozen=True)
class PracticeStats:
    """What one batch of practice episodes did (for budgets and tables)."""

    episodes: int
    steps: int
    robot_seconds: float
    successes: int
    takeovers: int
    human_steps: int
    episode_ids: tuple[str, ...]


def practice(
    chunk_fn: ChunkFn,
    task: str,
    sim: SimConfig,
    seeds: Sequence[int],
    store: EpisodeStore,
    *,
    operator: SimOperatorConfig | None,
    policy_version: int,
    execute: int,
    num_envs: int = 16,
    session_id: str = "compare",
    extra: dict[str, str] | None = None,
) -> PracticeStats:
    """Run one episode per seed (seeds in order, ``num_envs`` at a time) and record each into ``store``.

    With ``operator`` a simulated person watches each robot, takes over with the expert and
    marks the outcome; its actions are recorded as interventions. ``extra`` tags every
    episode's meta.
    """
    sim_cfg = dataclasses.replace(sim, task=task)
    robots = [make_robot(task, sim_cfg) for _ in range(min(num_envs, len(seeds)))]
    ops = [SimulatedOperator(r, operator) if operator is not None else None for r in robots]
    recorder = EpisodeRecorder(
        store, task, session_id, policy_version=policy_version, extra=dict(extra or {})
    )
    episodes = run_and_close(
        robots,
        ChunkActor(chunk_fn, execute),
        [EpisodePlan(int(s)) for s in seeds],
        total=len(seeds),
        operators=ops,
        recorder=recorder,
        where="practice",
    )
    steps = sum(e.length for e in episodes)
    return PracticeStats(
        episodes=len(episodes),
        steps=steps,
        robot_seconds=steps / robots[0].robot_spec.control_hz,
        successes=sum(e.outcome == "success" for e in episodes),
        takeovers=sum(e.takeovers for e in episodes),
        human_steps=sum(e.human_steps for e in episodes),
        episode_ids=tuple(e.meta.episode_id for e in episodes if e.meta is not None),
    )
