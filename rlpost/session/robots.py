"""The robot side of a session: :class:`RobotGroup` (several sims in one actor process), the
:class:`Fleet` of robot actors the driver runs (start, dispatch, collect, restarts, head
offers, close), and the driver's record of each finished episode (``_outcome``).

RobotGroup is a plain class; the fleet applies ``ray.remote`` to it (and to
:class:`actors.robot_actor.RobotActor` for one robot per actor).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.config import ActorConfig
from actors.control_loop import EpisodeReport
from actors.live_view import FrameWindow
from actors.robot_actor import RobotActor
from actors.runner import ActorStatus, RobotRunner, RobotSnapshot
from rlpost.fleet_status import EpisodeOutcome
from rlpost.session.config import RayConfig

log = logging.getLogger(__name__)

ESTOP_POLL_S = 1.0  # an e-stopped robot's run() waits this long for clear_estop before returning


class SessionError(RuntimeError):
    """The session cannot keep going (a robot actor died for good, a bad session directory)."""


class RobotGroup:
    """Several simulated robots in one actor process, each with its own runner (plain class).

    Ray runs concurrent calls on threads (``max_concurrency``), so each robot's ``run``
    proceeds in parallel; weights offered once reach every robot of the group.
    """

    def __init__(self, cfgs: list[ActorConfig]) -> None:
        self.runners = {c.robot_id: RobotRunner.from_config(c) for c in cfgs}

    def run(self, robot_id: str, episodes: int, estop_wait_s: float = 0.0) -> list[EpisodeReport]:
        return self.runners[robot_id].run(episodes, estop_wait_s)

    def status(self) -> list[ActorStatus]:
        return [r.status() for r in self.runners.values()]

    def snapshot(self) -> list[RobotSnapshot]:
        return [r.snapshot() for r in self.runners.values()]

    def recent_frames(self, robot_id: str, steps: list[int]) -> FrameWindow | None:
        return self.runners[robot_id].recent_frames(steps)

    def offer_weights(self, tensors: dict[str, np.ndarray], version: int) -> bool:
        return all([r.offer_weights(tensors, version) for r in self.runners.values()])

    def close(self) -> None:
        for r in self.runners.values():
            r.close()


@dataclass
class _Robot:
    robot_id: str
    actor: Any  # Ray actor handle (RobotActor or RobotGroup)
    grouped: bool
    running: Any = None  # ObjectRef of the run() in flight
    restarts: int = 0


class Fleet:
    """The session's robot actors, as the driver sees them.

    One episode at a time per robot: :meth:`dispatch` starts ``run(1)`` on every idle robot the
    budget allows, :meth:`collect` returns the finished episodes' reports. A robot actor that
    died is waited for while Ray restarts it (its episode was recovered from the store's WAL) and
    is offered the latest head again; after ``ray.actor_max_restarts`` deaths, or if Ray gives up
    on it, :class:`SessionError` stops the session.
    """

    def __init__(self, ray_cfg: RayConfig) -> None:
        self.cfg = ray_cfg
        self.robots: list[_Robot] = []
        self.head_ref: Any = None  # the latest head offered (an object ref), re-offered after a restart
        self.version = 0

    def start(self, cfgs: list[ActorConfig]) -> None:
        """Create the actors (one per robot, or ``robots_per_actor`` sims per actor); returns at once."""
        import ray

        rc = self.cfg
        base = {"num_cpus": rc.actor_num_cpus, "max_restarts": rc.actor_max_restarts}
        if rc.robots_per_actor == 1:
            cls = ray.remote(RobotActor)
            for c in cfgs:
                opts = dict(base, max_concurrency=4)
                if rc.robot_resources:
                    opts["resources"] = {f"robot:{c.robot_id}": 1}
                self.robots.append(_Robot(c.robot_id, cls.options(**opts).remote(c), grouped=False))
            return
        cls = ray.remote(RobotGroup)
        for k in range(0, len(cfgs), rc.robots_per_actor):
            part = cfgs[k : k + rc.robots_per_actor]
            actor = cls.options(**base, max_concurrency=len(part) + 3).remote(part)
            self.robots += [_Robot(c.robot_id, actor, grouped=True) for c in part]

    def actors(self) -> list[Any]:
        """Each actor handle once (a group's actor serves several robots)."""
        seen: dict[Any, None] = {}
        for r in self.robots:
            seen.setdefault(r.actor, None)
        return list(seen)

    def in_flight(self) -> int:
        """Robots with an episode running."""
        return sum(r.running is not None for r in self.robots)

    def dispatch(self, budget_left: Callable[[], int | None]) -> None:
        """Start one episode on every idle robot while ``budget_left()`` (None: unlimited) is > 0."""
        for r in self.robots:
            if r.running is not None:
                continue
            left = budget_left()
            if left is not None and left <= 0:
                return
            if r.grouped:
                r.running = r.actor.run.remote(r.robot_id, 1, ESTOP_POLL_S)
            else:
                r.running = r.actor.run.remote(1, ESTOP_POLL_S)

    def collect(self, timeout_s: float) -> list[tuple[str, EpisodeReport]]:
        """(robot id, report) of the episodes finished within ``timeout_s``."""
        import ray

        running = {r.running: r for r in self.robots if r.running is not None}
        if not running:
            return []
        # Return as soon as one robot is done (it gets its next episode at once), plus any
        # others already done; waiting for all of them idled early finishers up to timeout_s.
        done, rest = ray.wait(list(running), num_returns=1, timeout=timeout_s)
        if done and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            done += more
        finished: list[tuple[str, EpisodeReport]] = []
        for ref in done:
            r = running[ref]
            r.running = None
            try:
                reports = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                self._robot_failed(r, e)
                continue
            finished += [(r.robot_id, rep) for rep in reports]
        return finished

    def _robot_failed(self, r: _Robot, e: Exception) -> None:
        r.restarts += 1
        if r.restarts > self.cfg.actor_max_restarts:
            raise SessionError(
                f"robot {r.robot_id!r}: its actor died {r.restarts} times (last: {e}); stopping the session"
            ) from e
        log.error(
            "robot %r: actor died (%s); it restarts and its episode was recovered from the WAL", r.robot_id, e
        )
        self._wait_restarted(r)
        if self.head_ref is not None:  # a restarted actor lost the weights it held in memory
            r.actor.offer_weights.remote(self.head_ref, self.version)

    def _wait_restarted(self, r: _Robot, timeout_s: float = 300.0) -> None:
        """Wait until Ray has the actor back. A call dispatched while it restarts fails at once,
        and counting that as another death would stop the session after one crash."""
        import ray

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                ray.get(r.actor.status.remote(), timeout=30)
                return
            except ray.exceptions.ActorDiedError as e:  # Ray gave up restarting it
                raise SessionError(f"robot {r.robot_id!r}: its actor is dead for good ({e})") from e
            except (ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError) as e:
                if time.monotonic() > deadline:
                    raise SessionError(
                        f"robot {r.robot_id!r}: its actor did not come back within {timeout_s:.0f} s ({e})"
                    ) from e
                time.sleep(0.2)

    def statuses(self, timeout_s: float = 30.0) -> list[ActorStatus]:
        """Every robot's status, asked of all actors at once (a group answers for its robots)."""
        import ray

        refs = [a.status.remote() for a in self.actors()]
        return [s for st in ray.get(refs, timeout=timeout_s) for s in (st if isinstance(st, list) else [st])]

    def offer(self, head: dict[str, np.ndarray] | Any, version: int) -> float:
        """Put ``head`` in the object store once (unless it is a ref) and offer that ref to every
        actor; returns milliseconds until all acknowledged (not until they act on it)."""
        import ray

        t0 = time.perf_counter()
        ref = head if isinstance(head, ray.ObjectRef) else ray.put(head)
        ray.get([a.offer_weights.remote(ref, version) for a in self.actors()], timeout=120)
        self.head_ref, self.version = ref, version
        return (time.perf_counter() - t0) * 1e3

    def close(self) -> None:
        """Close every actor (flushing its store writer) and kill it; a dead one is logged, and its
        WAL is recovered when the store is next opened."""
        import ray

        for a in self.actors():
            try:
                ray.get(a.close.remote(), timeout=60)
            except ray.exceptions.RayError as e:
                log.error("closing a robot actor failed: %s", e)
            ray.kill(a)


def _outcome(robot_id: str, r: EpisodeReport) -> EpisodeOutcome:
    return EpisodeOutcome(
        robot_id=robot_id,
        outcome=r.meta.outcome,
        steps=r.steps,
        intervention_steps=r.intervention_steps,
        takeovers=sum(c.kind == "take_over" for c in r.commands),
        duration_s=r.meta.duration_s,
    )
