"""The control loop: one robot, one policy copy, the safety filter, operators, and the episode sink.

Per control step, at the robot's rate::

    commands  <- operators.poll()            take over / hand back / human action / marks / e-stop ...
    chunk     <- inference worker (never blocks in realtime; see ChunkExecutor for the timeline)
    proposed   = human action if a person holds control, else the policy's planned action
    action     = safety.filter(proposed)     hold if nothing usable, clip, workspace, rate limit
    sink.append(StepRecord(obs, action, policy_action, intervention, policy_version, t_ns))
    obs        = robot.step(action)
    sink.set_reward(t, reward)

Every step is recorded before the robot executes it (write-ahead: a crash while the robot
acts cannot lose a step it executed), including the policy's proposal while a person holds
control (NaN when no chunk was ready). If the store refuses a step (disk full), its action
is never sent: the robot holds, and :class:`StoreFullError` stops the loop; an episode whose
finish the disk refused stays in flight and is finished first by the next ``run_episode``
(or recovered as aborted from its WAL). An episode ends on
env termination or truncation (an operator's mark, if any, wins), an operator mark,
abort, reset or e-stop, the step limit, or a robot disconnect (aborted, steps kept). An
unexpected error also finishes the episode (aborted) before it propagates, so nothing
recorded is lost.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from actors.chunking import Chunk, ChunkExecutor, PlannedAction
from actors.clock import Clock, RealtimeClock, SimulatedClock
from actors.config import ControlConfig, SafetyConfig
from actors.inference import InferenceResult, InferenceWorker
from actors.safety import SafetyFilter
from rlpost.data.store_error import StoreError
from rlpost.interfaces import EpisodeSink, OperatorInput, Policy, Robot, WeightSource, observation_from_dict
from rlpost.rollout.outcome import MARK_KINDS, env_outcome, with_mark
from rlpost.rollout.recorder import step_record
from rlpost.schema import EpisodeMeta, Observation, OperatorCommand, SampledChunk, Source, StepRecord

log = logging.getLogger(__name__)

END_KINDS = {"mark_success", "mark_failure", "abort", "reset", "estop"}
PAUSED_POLL_S = 0.01  # simulated time never waits: a paused loop sleeps this long between polls


class EStopLatched(RuntimeError):
    """An episode cannot start while the e-stop is latched; an operator must send clear_estop."""


class StepObserver(Protocol):
    """Something that watches every step in-process (e.g. the simulated operator's device)."""

    def on_reset(self, obs: dict, info: dict, seed: int | None) -> None: ...

    def on_step(self, obs: dict, info: dict, terminated: bool, truncated: bool) -> None: ...


@dataclass(frozen=True)
class AppliedCommand:
    """An operator command as the loop applied it."""

    step: int  # the step it took effect at (before that step's action)
    kind: str
    operator_id: str
    seq: int
    action: np.ndarray | None = None


@dataclass
class EpisodeReport:
    """What one episode did (the store holds the steps; this is the loop's account)."""

    meta: EpisodeMeta  # as finished by the sink
    end_reason: str  # env | operator_mark | abort | reset | estop | max_steps | robot_disconnected | error
    steps: int = 0
    intervention_steps: int = 0
    events: collections.Counter[str] = field(default_factory=collections.Counter)  # safety + loop events
    commands: list[AppliedCommand] = field(default_factory=list)
    chunks: int = 0
    policy_errors: list[str] = field(default_factory=list)


@dataclass
class _Episode:
    meta: EpisodeMeta
    report: EpisodeReport
    human: bool = False
    human_action: np.ndarray | None = None
    human_t_ns: int = 0
    paused: bool = False
    resumed: bool = False
    end: tuple[str, str, str] | None = None  # (outcome, marked_by, reason)
    recorded_chunk: int = -1  # chunk_id of the last chunk whose first executed step was recorded


class ControlLoop:
    """Runs episodes on one robot; see the module docstring."""

    def __init__(
        self,
        robot: Robot,
        policy: Policy,
        sink: EpisodeSink,
        *,
        control: ControlConfig | None = None,
        safety: SafetyConfig | None = None,
        operators: Sequence[OperatorInput] = (),
        observers: Sequence[StepObserver] = (),
        weights: WeightSource | None = None,
        clock: Clock | None = None,
        robot_id: str = "robot-0",
        session_id: str = "",
        task: str = "",
        source: Source = "autonomous",
        sim_operator_ids: frozenset[str] = frozenset(),
        episode_extra: dict[str, str] | None = None,
    ) -> None:
        self.robot, self.sink = robot, sink
        self.episode_extra = dict(episode_extra or {})  # tags every episode's meta carries (e.g. noise_scale)
        self.cfg = control or ControlConfig()
        self.spec = robot.robot_spec
        self.hz = self.cfg.hz or self.spec.control_hz
        self.period_ns = round(1e9 / self.hz)
        self.safety = SafetyFilter(self.spec, safety)
        self.executor = ChunkExecutor(self.cfg.execute, self.cfg.lead_steps, self.cfg.blend_steps)
        self.worker = InferenceWorker(policy, weights, name=f"inference-{robot_id}")
        self.operators, self.observers = list(operators), list(observers)
        self.clock = clock or (RealtimeClock() if self.cfg.realtime else SimulatedClock())
        self.robot_id, self.session_id = robot_id, session_id or f"session-{uuid.uuid4().hex[:8]}"
        self.task, self.source, self.sim_operator_ids = task, source, sim_operator_ids
        self.tick_ns: collections.deque[int] = collections.deque(maxlen=100_000)  # step start times
        self.overruns = 0
        # (head version of the latest planned action, time.monotonic_ns() when the loop first planned
        # with it): how soon a published head drives the robot. Wall time even under simulated
        # time, so a driver on the same host can compare it with when it published.
        self.acting: tuple[int, int] = (-1, 0)
        self.stale_commands = 0
        # The episode in flight (None between episodes); read by status() on other threads.
        self.current: _Episode | None = None
        self._nan = np.full(self.spec.action_dim, np.nan, np.float32)
        self._chunk_id = 0
        self.unfinished: _Episode | None = None  # its finish failed (disk full); retried first
        self._pause_next = False  # a pause that arrived between episodes

    # -- public -------------------------------------------------------------------------------------
    def run_episode(self, seed: int | None = None) -> EpisodeReport:
        """Run one episode to its end and finish it in the sink.

        Raises:
            EStopLatched: the e-stop is latched (nothing is started).
            ConnectionError: the robot did not answer its reset (no episode was begun).
            StoreFullError: the store refused a write (the robot was held; nothing recorded is lost).
        """
        if self.unfinished is not None:  # nothing new starts before the last episode is stored
            ep, self.unfinished = self.unfinished, None
            try:
                self._finish(ep)
            except StoreError:
                self.unfinished = ep
                raise
        self._drain_stale_commands()
        if self.safety.estopped:
            raise EStopLatched(f"robot {self.robot_id!r}: e-stop latched; an operator must send clear_estop")
        obs, info = self.robot.reset(seed=seed)
        t_ns = self.clock.now_ns()
        o = observation_from_dict(obs, f"robot {self.robot_id!r} reset", self.spec)
        meta = EpisodeMeta(
            episode_id=f"{self.robot_id}-{uuid.uuid4().hex[:12]}",
            task=self.task,
            instruction=o.instruction,
            robot_id=self.robot_id,
            session_id=self.session_id,
            source=self.source,
            seed=seed,
            start_ns=time.time_ns(),
            extra=dict(self.episode_extra),
        )
        self.sink.begin(meta)
        ep = _Episode(meta, EpisodeReport(meta, end_reason=""))
        ep.paused, self._pause_next = self._pause_next, False
        self.current = ep
        try:
            for ob in self.observers:
                ob.on_reset(obs, info, seed)
            self.safety.reset()
            self.executor.reset()
            self.worker.cancel()
            self._run(ep, o, t_ns)
        except BaseException as e:
            # Finish what was recorded before the error propagates: a step recorded is a step stored.
            ep.end = ("aborted", "none", f"error: {type(e).__name__}")
            try:
                self._finish(ep)
            except StoreError as fe:  # e.g. the disk is still full: the WAL keeps every step
                log.error("robot %r: episode %s stays in flight: %s", self.robot_id, ep.meta.episode_id, fe)
                self.unfinished = ep
            raise
        return self._finish(ep)

    def wait_for_clear_estop(self, timeout_s: float) -> bool:
        """Between episodes: poll operators until clear_estop (True) or the timeout (False)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._drain_stale_commands()
            if not self.safety.estopped:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def close(self) -> None:
        self.worker.close()

    # -- the loop -----------------------------------------------------------------------------------------
    def _run(self, ep: _Episode, o: Observation, t_ns: int) -> None:
        t = 0
        self._first_chunk(ep, o, 0)
        next_tick = self.clock.now_ns() + self.period_ns  # one period after the observation
        while True:
            next_tick = self._tick(next_tick)
            self._apply_commands(ep, t)
            if ep.end is not None and ep.end[2] != "estop":
                return
            if ep.paused:
                if not self.clock.realtime:
                    time.sleep(PAUSED_POLL_S)  # else a paused robot spins a core on commands
                continue
            if ep.resumed:
                ep.resumed = False
                self._first_chunk(ep, o, t)  # the plan made before the pause is stale
                next_tick = self.clock.now_ns() + self.period_ns
            planned = self._plan(ep, o, t)
            step = self._record_step(ep, o, t, t_ns, planned)
            self.sink.append(ep.meta.episode_id, step)  # write-ahead: stored before the robot moves
            ep.report.steps += 1
            try:
                obs, reward, terminated, truncated, info = self.robot.step(step.action)
            except ConnectionError as e:  # the action may have been executed; its result is unknown
                log.error(
                    "robot %r disconnected at step %d: %s; ending the episode as aborted", self.robot_id, t, e
                )
                ep.end = ("aborted", "none", "robot_disconnected")
                return
            if not np.isnan(reward):
                self.sink.set_reward(ep.meta.episode_id, t, float(reward))
            t += 1
            t_ns = self.clock.now_ns()
            if ep.end is not None:  # e-stop: the hold step is recorded, then the episode ends
                return
            for ob in self.observers:
                ob.on_step(obs, info, terminated, truncated)
            if terminated or truncated:
                ep.end = (env_outcome(terminated, info), "env", "env")
                self._apply_commands(ep, t)  # an operator's mark at the end wins over the env's judgement
                return
            if self.cfg.max_steps and t >= self.cfg.max_steps:
                ep.end = ("timeout", "none", "max_steps")
                return
            o = observation_from_dict(obs, f"robot {self.robot_id!r} step {t}", self.spec)

    def _tick(self, next_tick: int) -> int:
        """Wait for the next period; returns the deadline after it. A late loop restarts its schedule."""
        now = self.clock.now_ns()
        if now > next_tick + self.period_ns:
            self.overruns += 1
            next_tick = now
        self.clock.wait_until(next_tick)
        self.tick_ns.append(self.clock.now_ns())
        return next_tick + self.period_ns

    def _first_chunk(self, ep: _Episode, o: Observation, t: int) -> None:
        """The robot rests while the first chunk (of the episode, or after a pause) is computed."""
        self.worker.cancel()
        self.executor.reset()
        self.worker.submit(o, t)
        self.executor.mark_requested()
        self._take(ep, self.worker.wait(self.cfg.first_chunk_timeout_s))

    def _plan(self, ep: _Episode, o: Observation, t: int) -> PlannedAction | None:
        result = self.worker.poll()
        if result is None and self.executor.due(t) and self.executor.requested and not self.clock.realtime:
            result = self.worker.wait(self.cfg.nonrealtime_wait_s)  # simulated time waits for the model
        self._take(ep, result)
        if self.executor.wants_request(t) and not self.worker.busy:
            self.worker.submit(o, t)
            self.executor.mark_requested()
        planned = self.executor.next(t)
        if planned is None:
            ep.report.events["late_chunk"] += 1
        elif planned.version != self.acting[0]:
            self.acting = (planned.version, time.monotonic_ns())  # one tuple: readers on other threads
        return planned

    def _take(self, ep: _Episode, result: InferenceResult | None) -> None:
        if result is None:
            return
        if result.error:
            ep.report.policy_errors.append(f"step {result.origin_step}: {result.error}")
            ep.report.events["policy_error"] += 1
            self.executor.request_failed()
            return
        self._chunk_id += 1
        ep.report.chunks += 1
        self.executor.offer(
            Chunk(result.chunk, result.version, result.origin_step, self._chunk_id, result.noise)
        )

    def _record_step(
        self, ep: _Episode, o: Observation, t: int, t_ns: int, planned: PlannedAction | None
    ) -> StepRecord:
        proposed: np.ndarray | None = None if planned is None else planned.action
        if ep.human:
            fresh = ep.human_action is not None and (
                self.clock.now_ns() - ep.human_t_ns <= self.cfg.human_timeout_s * 1e9
            )
            proposed = ep.human_action if fresh else None
            ep.report.intervention_steps += 1
        action, events = self.safety.filter(proposed, o.state)
        for ev in events:
            ep.report.events[ev.kind] += 1
            if ev.kind == "nonfinite":
                log.error(
                    "robot %r step %d: %s (source: %s)",
                    self.robot_id,
                    t,
                    ev.detail,
                    "operator" if ep.human else "policy",
                )
        chunk = None if planned is None or ep.human else planned.chunk
        sampled = None
        if chunk is not None and chunk.chunk_id != ep.recorded_chunk:  # a chunk is stored with its first step
            ep.recorded_chunk = chunk.chunk_id
            if chunk.noise is not None:
                sampled = SampledChunk(chunk.origin_step, chunk.noise, chunk.actions)
        return step_record(
            o,
            action,
            self._nan if planned is None else planned.action,
            intervention=ep.human,
            policy_version=self.worker.version if planned is None else planned.version,
            t_ns=t_ns,
            frame_index=t,
            chunk_start=-1 if chunk is None else chunk.origin_step,
            sampled=sampled,
        )

    # -- operators --------------------------------------------------------------------------------------
    def _poll(self) -> list[OperatorCommand]:
        return [cmd for op in self.operators for cmd in op.poll()]

    def _marked_by(self, cmd: OperatorCommand) -> str:
        return "sim_operator" if cmd.operator_id in self.sim_operator_ids else "operator"

    def _apply_commands(self, ep: _Episode, t: int) -> None:
        for cmd in self._poll():
            ep.report.commands.append(AppliedCommand(t, cmd.kind, cmd.operator_id, cmd.seq, cmd.action))
            k, by = cmd.kind, self._marked_by(cmd)
            if k == "estop":
                self.safety.estop(cmd.operator_id)
                if ep.end is None or ep.end[2] in ("env", "max_steps"):
                    ep.end = ("aborted", by, "estop")
            elif k == "clear_estop":
                self.safety.clear_estop()
            elif k in ("mark_success", "mark_failure"):
                # A mark wins over the env's judgement (the outcome rule), not over an e-stop or abort.
                if ep.end is None:
                    ep.end = (MARK_KINDS[k], by, "operator_mark")
                elif ep.end[2] == "env":
                    ep.end = (with_mark(ep.end[0], MARK_KINDS[k]), by, "operator_mark")
            elif k in ("abort", "reset"):
                if ep.end is None or ep.end[2] == "env":
                    ep.end = ("aborted", by, k)
            elif k == "take_over":
                ep.human, ep.human_action = True, None
            elif k == "hand_back":
                ep.human, ep.human_action = False, None
            elif k == "human_action":
                if ep.human:
                    ep.human_action, ep.human_t_ns = cmd.action, self.clock.now_ns()
                else:
                    ep.report.events["human_action_without_take_over"] += 1
            elif k == "pause":
                ep.paused = True
            elif k == "resume" and ep.paused:
                ep.paused, ep.resumed = False, True

    def _drain_stale_commands(self) -> None:
        """Between episodes e-stop, clear_estop, pause and resume mean something (a pause clicked
        while the robot resets holds the next episode at its start); the rest is logged and dropped."""
        for cmd in self._poll():
            if cmd.kind == "estop":
                self.safety.estop(cmd.operator_id)
            elif cmd.kind == "clear_estop":
                self.safety.clear_estop()
            elif cmd.kind in ("pause", "resume"):
                self._pause_next = cmd.kind == "pause"
            else:
                self.stale_commands += 1
                log.warning(
                    "robot %r: %r from operator %r arrived between episodes; dropped",
                    self.robot_id,
                    cmd.kind,
                    cmd.operator_id,
                )

    def _finish(self, ep: _Episode) -> EpisodeReport:
        outcome, marked_by, reason = ep.end or ("aborted", "none", "error")
        self.current = None
        self.worker.cancel()
        ep.report.meta = self.sink.finish(ep.meta.episode_id, outcome, marked_by)
        ep.report.end_reason = reason
        log.info(
            "robot %r episode %s: %s (marked by %s, %s) after %d steps, %d with a person in control",
            self.robot_id,
            ep.meta.episode_id,
            outcome,
            marked_by,
            reason,
            ep.report.steps,
            ep.report.intervention_steps,
        )
        return ep.report
