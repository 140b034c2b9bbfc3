"""Practice episodes for the comparison harness: many simulated robots in lockstep, one batched
policy call per chunk, optional simulated operators, every step recorded into an episode store.

The product's practice runs each robot in its own Ray actor at the robot's rate (rlpost.session);
a comparison of seven methods x seeds x tasks cannot afford that on a CPU, and needs none of it:
the same policy, operator, store schema and learner see the same data, only faster.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rlpost.data.episode_store import EpisodeStore
from rlpost.interfaces import observation_from_dict
from rlpost.schema import EpisodeMeta, Observation, SchemaError, StepRecord
from rlpost.sim import SimConfig, make_robot
from rlpost.sim.config import SimOperatorConfig
from rlpost.sim.operator import SimulatedOperator

ChunkFn = Callable[[Sequence[Observation]], np.ndarray]  # B observations -> float32 [B, H, A]


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
    marks the outcome; its actions are recorded as interventions. The recorded outcome is
    the env's; ``marked_by`` says who judged it. ``extra`` tags every episode's meta.
    """
    sim_cfg = dataclasses.replace(sim, task=task)
    robots = [make_robot(task, sim_cfg) for _ in range(min(num_envs, len(seeds)))]
    spec = robots[0].robot_spec
    ops = [SimulatedOperator(r, operator) if operator is not None else None for r in robots]
    nan_action = np.full(spec.action_dim, np.nan, np.float32)
    todo = list(seeds)
    slots: list[dict | None] = [None] * len(robots)
    ids: list[str] = []
    totals = {"steps": 0, "successes": 0, "takeovers": 0, "human": 0}

    def start(i: int) -> None:
        seed = todo.pop(0)
        obs, info = robots[i].reset(seed=seed)
        meta = EpisodeMeta(
            episode_id=uuid.uuid4().hex,
            task=task,
            instruction=str(obs["instruction"]),
            robot_id=f"sim-{i}",
            session_id=session_id,
            source="autonomous",
            seed=int(seed),
            start_ns=time.time_ns(),
            extra=dict(extra or {}),
        )
        store.begin(meta)
        op = ops[i]
        if op is not None:
            op.reset(seed=seed)
            op.observe(obs, info)
        o = observation_from_dict(obs, f"practice robot {i}", spec)
        slots[i] = {"meta": meta, "obs": o, "queue": [], "t": 0, "human": False}

    for i in range(len(robots)):
        if todo:
            start(i)
    while any(s is not None for s in slots):
        # a person in control acts this step; everyone else without actions left asks the policy
        for i, s in enumerate(slots):
            if s is not None and ops[i] is not None:
                for cmd in ops[i].poll():
                    if cmd.kind == "take_over":
                        s["human"], s["queue"] = True, []
                        totals["takeovers"] += 1
                    elif cmd.kind == "hand_back":
                        s["human"] = False
                    elif cmd.kind == "human_action":
                        s["human_action"] = cmd.action
        need = [i for i, s in enumerate(slots) if s is not None and not s["human"] and not s["queue"]]
        if need:
            for i, chunk in zip(need, chunk_fn([slots[i]["obs"] for i in need]), strict=True):
                slots[i]["queue"] = list(np.asarray(chunk, np.float32)[:execute])
        for i, s in enumerate(slots):
            if s is None:
                continue
            o = s["obs"]  # checked once per step, used for the policy call and the record
            if s["human"]:
                if "human_action" not in s:
                    raise SchemaError(
                        f"practice robot {i}: the operator is in control but sent no human_action"
                    )
                proposed = nan_action
                action = np.asarray(s.pop("human_action"), np.float32)
            else:
                proposed = s["queue"].pop(0)
                action = proposed
            action = np.clip(action, spec.action_low, spec.action_high).astype(np.float32)
            obs, reward, terminated, truncated, info = robots[i].step(action)
            store.append(
                s["meta"].episode_id,
                StepRecord(
                    images=o.images,
                    state=o.state,
                    action=action,
                    policy_action=np.asarray(proposed, np.float32),
                    intervention=bool(s["human"]),
                    policy_version=policy_version,
                    t_ns=time.monotonic_ns(),
                    frame_index=s["t"],
                    reward=float(reward),
                ),
            )
            s["t"] += 1
            if not (terminated or truncated):
                s["obs"] = observation_from_dict(obs, f"practice robot {i}", spec)
            totals["steps"] += 1
            totals["human"] += int(s["human"])
            if ops[i] is not None:
                ops[i].observe(obs, info, terminated=terminated, truncated=truncated)
            if terminated or truncated:
                outcome = "success" if info.get("is_success") else "failure" if terminated else "timeout"
                marked_by = "env"
                if ops[i] is not None:
                    ops[i].poll()  # the person's hand-back and mark; the env's outcome is the truth here
                    marked_by = "sim_operator"
                store.finish(s["meta"].episode_id, outcome=outcome, marked_by=marked_by)
                ids.append(s["meta"].episode_id)
                totals["successes"] += int(outcome == "success")
                slots[i] = None
                if todo:
                    start(i)
    for r in robots:
        r.close()
    return PracticeStats(
        episodes=len(ids),
        steps=totals["steps"],
        robot_seconds=totals["steps"] / spec.control_hz,
        successes=totals["successes"],
        takeovers=totals["takeovers"],
        human_steps=totals["human"],
        episode_ids=tuple(ids),
    )
