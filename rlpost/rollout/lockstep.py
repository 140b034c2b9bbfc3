"""The batched lockstep loop: many robots stepped together, one batched plan for all that need one.

Per round, for every robot still running an episode::

    commands  <- its operator.poll()          take_over / human_action / hand_back / marks
    plans     <- actor.plan(robots whose plan ran out and no person holds control)   one call
    action     = the person's action if they hold control, else the next planned action
    obs        = robot.step(clip(action)); the step is recorded (if a recorder is given)
    operator.observe(obs); at the episode's end the outcome rule decides what is stored

and a robot whose episode ended starts the next planned episode in the same round. The
robot actors' control loop (actors/control_loop.py) runs one robot at its rate with the same
outcome rule and step recorder; this loop serves everything that runs simulated robots
in one process as fast as they go: evaluation, the comparison harness's practice, demo
collection and the reward model's practice data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from rlpost.interfaces import Robot, observation_from_dict
from rlpost.rollout.acting import Actor, EpisodePlan, PlannedChunk
from rlpost.rollout.operator_state import OperatorState
from rlpost.rollout.outcome import env_outcome, failure_reason, with_mark
from rlpost.rollout.recorder import EpisodeRecorder
from rlpost.schema import EpisodeMeta, Observation, OperatorCommand, SampledChunk, SchemaError, check_array


class WatchingOperator(Protocol):
    """An operator that watches every step in-process (the simulated operator)."""

    def reset(self, seed: int | None = None) -> None: ...

    def observe(
        self, obs: dict, info: dict, *, terminated: bool = False, truncated: bool = False
    ) -> None: ...

    def poll(self) -> list[OperatorCommand]: ...


@dataclass
class EpisodeRollout:
    """What one episode of a rollout did (the store, if any, holds its steps)."""

    seed: int
    slot: int  # the robot it ran on
    instruction: str
    outcome: str  # success | failure | timeout, after the outcome rule
    marked_by: str  # env, or the operator's kind when they marked it
    length: int  # steps executed
    duration_s: float  # robot time: length / control_hz
    total_reward: float
    final_progress: float  # privileged progress after the last step, [0, 1]
    failure_reason: str  # the env's reason ('' unless outcome is failure)
    route: str  # built-in tasks: the gap the gripper first crossed the wall's line in ('' if none)
    takeovers: int
    human_steps: int
    extra: dict[str, str] = field(default_factory=dict)  # the plan's tags and the actor's
    interventions: list[bool] = field(default_factory=list, repr=False)  # per step: a person's action ran
    progress: list[float] = field(default_factory=list, repr=False)  # per step, after the step
    commands: list[OperatorCommand] = field(default_factory=list, repr=False)  # every command, in order
    mark: str = ""  # the operator's mark ('' if none)
    meta: EpisodeMeta | None = None  # the stored episode's final meta (with a recorder)


@dataclass
class _Slot:
    """One robot's episode in flight."""

    plan: EpisodePlan
    o: Observation  # the observation the next action is chosen for
    ops: OperatorState
    operator: WatchingOperator | None
    meta: EpisodeMeta | None
    extra: dict[str, str]  # the plan's tags and the actor's
    queue: list[np.ndarray] = field(default_factory=list)  # planned actions still to execute
    chunk_start: int = -1  # frame of the observation the queued chunk was sampled from (-1: not a chunk)
    sampled: SampledChunk | None = None  # the queued chunk as sampled, until its first step is recorded
    t: int = 0
    total_reward: float = 0.0
    progress: float = 0.0
    interventions: list[bool] = field(default_factory=list)
    progress_trace: list[float] = field(default_factory=list)


def run_lockstep(
    robots: Sequence[Robot],
    actor: Actor,
    episodes: Iterable[EpisodePlan],
    *,
    operators: Sequence[WatchingOperator | None] | None = None,
    recorder: EpisodeRecorder | None = None,
    robot_ids: Sequence[str] | None = None,
    where: str = "rollout",
    marked_by: str = "sim_operator",
    on_episode: Callable[[EpisodeRollout], None] | None = None,
) -> list[EpisodeRollout]:
    """Run every planned episode on ``robots`` in lockstep; returns them in the order they ended.

    Args:
        robots: the robots (all with the same spec); episode plans go to free robots in order.
        actor: plans actions for robots no person controls (:class:`ChunkActor`, :class:`StepActor`).
        episodes: the episodes to run (drawn lazily, one as a robot becomes free).
        operators: per robot, the operator that watches it (or None); only supervised plans use it.
        recorder: records every step and episode into its store (None: nothing is stored).
        robot_ids: per robot, the id stored in each episode's meta (default ``sim-<i>``).
        where: names this rollout in errors, e.g. ``"eval"`` gives ``"eval robot 3 step 17: ..."``.
        marked_by: what an operator's mark is stored as.
        on_episode: called with each finished episode (progress bars, budgets).

    Raises:
        SchemaError: a plan that is not float32 [k >= 1, A] and finite, a bad observation, or a
            broken operator exchange (see :mod:`rlpost.rollout.operator_state`). With a recorder the
            episodes in flight are first stored as ``aborted`` with every step recorded so far.
    """
    loop = _Lockstep(
        robots, actor, iter(episodes), operators, recorder, robot_ids, where, marked_by, on_episode
    )
    try:
        loop.run()
    except BaseException:
        loop.abort()  # a step recorded is a step stored, also when the rollout fails
        raise
    return loop.done


class _Lockstep:
    """The state of one :func:`run_lockstep` call."""

    def __init__(
        self,
        robots: Sequence[Robot],
        actor: Actor,
        plans: Iterator[EpisodePlan],
        operators: Sequence[WatchingOperator | None] | None,
        recorder: EpisodeRecorder | None,
        robot_ids: Sequence[str] | None,
        where: str,
        marked_by: str,
        on_episode: Callable[[EpisodeRollout], None] | None,
    ) -> None:
        self.robots, self.actor, self.plans, self.recorder = robots, actor, plans, recorder
        self.spec = robots[0].robot_spec
        self.ids = list(robot_ids) if robot_ids is not None else [f"sim-{i}" for i in range(len(robots))]
        self.operators = list(operators) if operators is not None else [None] * len(robots)
        self.where, self.marked_by, self.on_episode = where, marked_by, on_episode
        self.nan_action = np.full(self.spec.action_dim, np.nan, np.float32)
        self.demo = recorder is not None and recorder.source == "demo"  # a demo proposes nothing
        self.slots: list[_Slot | None] = [None] * len(robots)
        self.done: list[EpisodeRollout] = []

    def run(self) -> None:
        for i in range(len(self.robots)):
            self.start(i)
        while any(s is not None for s in self.slots):
            self.poll_operators()
            self.plan()
            for i, s in enumerate(self.slots):
                if s is not None:
                    self.step(i, s)

    def start(self, i: int) -> None:
        plan = next(self.plans, None)
        if plan is None:
            return
        obs, info = self.robots[i].reset(seed=plan.seed)
        o = observation_from_dict(obs, f"{self.where} robot {i} reset", self.spec)
        extra = {**plan.extra, **self.actor.reset(i, plan)}
        meta = self.recorder.begin(self.ids[i], plan.seed, o.instruction, extra) if self.recorder else None
        operator = self.operators[i] if plan.supervised else None
        if operator is not None:
            operator.reset(seed=plan.seed)
            operator.observe(obs, info)
        s = _Slot(plan, o, OperatorState(f"{self.where} robot {i}"), operator, meta, extra)
        s.progress = float(info.get("progress", 0.0))
        self.slots[i] = s

    def poll_operators(self) -> None:
        """Commands first: a take_over this step pre-empts the policy's plan."""
        for s in self.slots:
            if s is not None and s.operator is not None:
                for cmd in s.operator.poll():
                    if s.ops.apply(cmd, s.t):
                        s.queue.clear()

    def plan(self) -> None:
        """One batched call for every robot whose plan ran out and no person controls."""
        need = [i for i, s in enumerate(self.slots) if s is not None and not s.ops.human and not s.queue]
        if not need:
            return
        slots = [self.slots[i] for i in need]
        for i, s, planned in zip(need, slots, self.actor.plan(need, [s.o for s in slots]), strict=True):
            at = f"{self.where} robot {i} step {s.t}"
            chunk = planned if isinstance(planned, PlannedChunk) else None
            p = chunk.actions if chunk is not None else planned
            check_array(
                p, name="planned actions", where=at, dtype=np.float32, shape=(None, self.spec.action_dim)
            )
            if len(p) == 0 or not np.all(np.isfinite(p)):
                raise SchemaError(f"{at}: the actor planned {len(p)} actions, some not finite or none at all")
            s.queue = list(p)
            s.chunk_start = s.t if chunk is not None else -1
            s.sampled = None
            if chunk is not None and chunk.sampled is not None and chunk.noise is not None:
                s.sampled = SampledChunk(s.t, chunk.noise, chunk.sampled).validate(at, self.spec.action_dim)

    def step(self, i: int, s: _Slot) -> None:
        chunk_start, sampled = -1, None
        if s.ops.human:
            proposed, action = self.nan_action, np.asarray(s.ops.take_human_action(s.t), np.float32)
        else:
            proposed = action = s.queue.pop(0)
            chunk_start, sampled, s.sampled = s.chunk_start, s.sampled, None
        action = np.clip(action, self.spec.action_low, self.spec.action_high).astype(np.float32)
        obs, reward, terminated, truncated, info = self.robots[i].step(action)
        if self.recorder is not None and s.meta is not None:
            self.recorder.append(
                s.meta.episode_id,
                s.o,
                action,
                self.nan_action if self.demo else proposed,
                intervention=s.ops.human,
                frame_index=s.t,
                reward=float(reward),
                chunk_start=-1 if self.demo else chunk_start,
                sampled=None if self.demo else sampled,
            )
        s.t += 1
        s.total_reward += float(reward)
        s.interventions.append(s.ops.human)
        s.progress = float(info.get("progress", s.progress))
        s.progress_trace.append(s.progress)
        if s.operator is not None:
            s.operator.observe(obs, info, terminated=terminated, truncated=truncated)
        if terminated or truncated:
            self.finish(i, s, terminated, info)
            self.start(i)
        else:
            s.o = observation_from_dict(obs, f"{self.where} robot {i} step {s.t}", self.spec)

    def finish(self, i: int, s: _Slot, terminated: bool, info: dict) -> None:
        if s.operator is not None:  # the person's hand-back and mark come after the last step
            for cmd in s.operator.poll():
                s.ops.apply(cmd, s.t)
        outcome = with_mark(env_outcome(terminated, info), s.ops.mark)
        by = self.marked_by if s.ops.mark else "env"
        self.slots[i] = None
        meta = self.recorder.finish(s.meta.episode_id, outcome, by) if self.recorder and s.meta else None
        ep = EpisodeRollout(
            seed=s.plan.seed,
            slot=i,
            instruction=s.o.instruction,
            outcome=outcome,
            marked_by=by,
            length=s.t,
            duration_s=s.t / self.spec.control_hz,
            total_reward=s.total_reward,
            final_progress=s.progress,
            failure_reason=failure_reason(outcome, info),
            route=str(info.get("route", "")),
            takeovers=s.ops.takeovers,
            human_steps=s.ops.human_steps,
            extra=s.extra,
            interventions=s.interventions,
            progress=s.progress_trace,
            commands=s.ops.commands,
            mark=s.ops.mark,
            meta=meta,
        )
        self.done.append(ep)
        if self.on_episode is not None:
            self.on_episode(ep)

    def abort(self) -> None:
        """Store the episodes in flight as aborted, with the steps recorded so far."""
        for i, s in enumerate(self.slots):
            if s is not None and s.meta is not None and self.recorder is not None:
                self.slots[i] = None
                self.recorder.finish(s.meta.episode_id, "aborted", "none")


def run_and_close(
    robots: Sequence[Robot],
    actor: Actor,
    episodes: Sequence[EpisodePlan] | Iterator[EpisodePlan],
    *,
    total: int,
    desc: str = "",
    **kwargs: Any,
) -> list[EpisodeRollout]:
    """:func:`run_lockstep` with a progress bar over ``total`` episodes (none if ``desc`` is ''),
    closing the robots however it ends. ``kwargs`` go to :func:`run_lockstep`."""
    bar = tqdm(total=total, desc=desc, disable=not desc, dynamic_ncols=True)
    try:
        return run_lockstep(robots, actor, episodes, on_episode=lambda _ep: bar.update(1), **kwargs)
    finally:
        bar.close()
        for r in robots:
            r.close()
