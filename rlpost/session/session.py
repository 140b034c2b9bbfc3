"""The :class:`Session` driver: starts Ray, the learner and the robot fleet, dispatches
episodes, offers new heads and shuts down cleanly; and the :class:`SessionSummary` it returns.
The robot actors themselves (start, dispatch, collect, restarts) are :class:`Fleet`'s; the
directory's marker, log and summary files :class:`SessionDirectory`'s.

The overview (the pieces, the session directory, resume) is the package docstring,
:mod:`rlpost.session`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actors.config import ActorConfig
from actors.control_loop import EpisodeReport
from actors.runner import ActorStatus
from rlpost.data.episode_store import EpisodeStore
from rlpost.fleet_status import FleetTracker, RobotLive, rate
from rlpost.metrics import MetricsLogger
from rlpost.session.config import PracticeConfig
from rlpost.session.directory import SessionDirectory
from rlpost.session.inputs import import_episodes
from rlpost.session.learner_service import LearnerService, LearnerTick
from rlpost.session.robots import Fleet, SessionError, _outcome, _Robot

log = logging.getLogger(__name__)

PRACTICE_SEED = 1_000_000  # robot i's episodes use seeds PRACTICE_SEED + i * SEED_STRIDE + n
SEED_STRIDE = 100_000
__all__ = ["PRACTICE_SEED", "SEED_STRIDE", "Session", "SessionError", "SessionSummary"]


@dataclass
class SessionSummary:
    """What a session did; ``rows`` is the final table, the rest are the measured numbers."""

    session_id: str
    out: str
    rows: list[dict[str, Any]]
    episodes: int
    steps: int
    robot_hours: float
    learner_step: int
    head_version: int
    wall_s: float
    actors_start_s: float
    steps_per_s: float  # aggregate control steps/s of all robots while practising
    updates_per_s: float  # learner updates/s while robots ran
    broadcast_ms: list[float]  # per published head: ray.put + offer to every actor, until all acked
    stopped_by: str  # budget | interrupt | error


class Session:
    """See the package docstring (:mod:`rlpost.session`): ``start()``, ``run()`` (calls start if
    needed), ``shutdown()``."""

    def __init__(self, cfg: PracticeConfig, on_status: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.on_status = on_status or (lambda text: log.info("\n%s", text))
        self.robot_ids = cfg.robot_names()
        self.tracker = FleetTracker(self.robot_ids, cfg.status_window)
        self.fleet = Fleet(cfg.ray)
        self.directory = SessionDirectory(self.out)
        self.learner: Any = None  # LearnerService, or its Ray actor handle
        self.remote_learner = cfg.ray.learner_actor
        self.session_id = ""
        self.learner_step = 0
        self.broadcast_ms: list[float] = []
        self.actors_start_s = float("nan")
        self._owns_ray = False
        self._stop = threading.Event()
        self._stopped_by = "budget"
        self._started = False
        self._closed = False
        self._learn_future: Any = None
        self._update_s = 0.0
        self._updates_while_running = 0
        self._practice_t0 = 0.0
        self._prior_episodes = 0
        self._prior_hours = 0.0
        self._metrics: MetricsLogger | None = None
        self._last_status = 0.0
        self.console: Any = None  # rlpost.session_console.SessionConsole while it serves

    # -- start ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Prepare the session directory and store, start (or join) Ray, the learner and the robots.

        Raises:
            SessionError: ``out`` holds a session and ``resume`` is false, or ``resume`` without one.
        """
        import ray

        cfg = self.cfg
        cfg.check_learning()
        self.session_id = self.directory.open(dataclasses.asdict(cfg), cfg.resume)
        store_dir = str(self.out / "store")
        with EpisodeStore.open(store_dir) as store:
            if cfg.demos:
                n = import_episodes(cfg.demos, store)
                log.info("session %s: imported %d episodes from %s", self.session_id, n, cfg.demos)
            practice = [m for m in store.episodes() if m.source != "demo"]
            self._prior_episodes = len(practice)
            self._prior_hours = sum(m.duration_s for m in practice) / 3600.0
            done_by = {r: sum(m.robot_id == r for m in practice) for r in self.robot_ids}
        self._metrics = MetricsLogger(
            dataclasses.replace(cfg.logger, group=self.session_id),
            self.out,
            f"{self.session_id}-robots",
            dataclasses.asdict(cfg),
        )
        if not ray.is_initialized():
            self._init_ray()
        group = self.session_id
        if cfg.learn:
            if self.remote_learner:
                opts: dict[str, Any] = {"num_cpus": cfg.ray.learner_num_cpus}
                if cfg.ray.learner_gpus:
                    opts["num_gpus"] = cfg.ray.learner_gpus
                self.learner = (
                    ray.remote(LearnerService)
                    .options(**opts)
                    .remote(cfg, store_dir, str(self.out / "learner"), group)
                )
            else:
                self.learner = LearnerService(cfg, store_dir, str(self.out / "learner"), group)
        t0 = time.perf_counter()
        self.fleet.start(self.robot_configs(store_dir, done_by))
        # The actors are up when each answers status(); that is the start-up cost of the fleet.
        self._refresh_live(timeout_s=300.0)
        self.actors_start_s = time.perf_counter() - t0
        log.info(
            "session %s: %d robot(s) up in %.1f s", self.session_id, len(self.robot_ids), self.actors_start_s
        )
        if cfg.learn:
            version = self._learner_call("version")
            if version > 0:  # resumed: robots start from the latest published head
                self._broadcast(version)
        self._started = True
        if cfg.console.enabled:
            from rlpost.session_console import SessionConsole

            self.console = SessionConsole(self, cfg.console)
            url = self.console.start()
            self.on_status(f"console: {url}  (also in {self.out / 'console.json'}, readable by you only)")

    def _init_ray(self) -> None:
        import ray

        rc = self.cfg.ray
        kwargs: dict[str, Any] = {
            "include_dashboard": rc.include_dashboard,
            "log_to_driver": rc.log_to_driver,
        }
        if rc.address:
            kwargs["address"] = rc.address
        else:
            n_actors = -(-len(self.robot_ids) // rc.robots_per_actor)
            need = n_actors * rc.actor_num_cpus + (rc.learner_num_cpus if rc.learner_actor else 0)
            kwargs["num_cpus"] = rc.num_cpus or max(os.cpu_count() or 1, int(np.ceil(need)))
        ray.init(**kwargs)
        self._owns_ray = True
        log.info("ray: %s", "joined " + rc.address if rc.address else f"local, {kwargs['num_cpus']} CPUs")

    @property
    def version(self) -> int:
        """The latest head version offered to the robots (0: none yet)."""
        return self.fleet.version

    @property
    def robots(self) -> list[_Robot]:
        """The driver's record of each robot actor (the console and fault scenarios read it)."""
        return self.fleet.robots

    def robot_configs(self, store_dir: str, done_by: dict[str, int] | None = None) -> list[ActorConfig]:
        """Each robot's ActorConfig: the template with its id, policy, store, task, session and seeds."""
        cfg, out = self.cfg, []
        for i, rid in enumerate(self.robot_ids):
            c = dataclasses.replace(
                cfg.actor,
                robot_id=rid,
                session_id=self.session_id,
                task=cfg.task,
                policy=cfg.policy_checkpoint,
                store=store_dir,
                weights_dir="",
                seed=cfg.seed + PRACTICE_SEED + i * SEED_STRIDE + (done_by or {}).get(rid, 0),
                endpoint=cfg.endpoints[i] if cfg.actor.robot == "zmq" else cfg.actor.endpoint,
                sim_operator_cfg=dataclasses.replace(cfg.actor.sim_operator_cfg, robot_id=rid),
            )
            out.append(c)
        return out

    # -- the learner, in the driver or as an actor ----------------------------------------------------
    def _learner_call(self, method: str, *args: Any) -> Any:
        import ray

        if self.remote_learner:
            return ray.get(getattr(self.learner, method).remote(*args))
        return getattr(self.learner, method)(*args)

    def _learn_step(self) -> bool:
        """One learner cycle; new heads go to the robots. Non-blocking when the learner is an actor.

        Returns whether the driver was busy learning (else it may wait for the robots).
        """
        import ray

        if self.learner is None:
            return False
        cap = self.cfg.max_updates_per_episode
        if cap and self._learn_future is None and self.learner_step >= cap * self._episodes():
            return False
        if self.remote_learner:
            if self._learn_future is None:
                self._learn_future = self.learner.train.remote(self.cfg.updates_per_cycle)
                return False
            done, _ = ray.wait([self._learn_future], timeout=0)
            if not done:
                return False
            tick = ray.get(self._learn_future)
            self._learn_future = None
        else:
            tick = self.learner.train(self.cfg.updates_per_cycle)
        self._on_tick(tick)
        return tick.updates > 0 and not self.remote_learner

    def _on_tick(self, tick: LearnerTick) -> None:
        self.learner_step = tick.step
        if tick.updates and self.fleet.in_flight():
            self._update_s += tick.seconds
            self._updates_while_running += tick.updates
        if tick.version > self.version:
            self._broadcast(tick.version)

    def _broadcast(self, version: int) -> None:
        """Offer the learner's current head to every robot actor (see :meth:`offer_head`)."""
        if self.remote_learner:
            head = self.learner.head_state.remote()  # the returned dict lives in the object store once
        else:
            head = self.learner.head_state()
        self.offer_head(head, version)

    def offer_head(self, head: dict[str, np.ndarray] | Any, version: int) -> float:
        """Put the head's arrays in the object store once and offer that one ref to every robot actor.

        Robots load it between chunks; ``rlpost bench fleet`` publishes through here too.

        Args:
            head: a dict of numpy arrays (put here), or an object ref of one.
            version: its head version; an actor ignores versions not newer than the one it holds.

        Returns:
            Milliseconds from the put until every actor acknowledged (not until they act on it).
        """
        ms = self.fleet.offer(head, version)
        self.broadcast_ms.append(ms)
        log.info("head version %d offered to %d actor(s) in %.1f ms", version, len(self.fleet.actors()), ms)
        if self._metrics is not None:
            self._metrics.log({"fleet/broadcast_ms": ms, "fleet/head_version": version}, self._step())
        return ms

    # -- run ------------------------------------------------------------------------------------------
    def _episodes(self) -> int:
        return self._prior_episodes + self.tracker.episodes

    def _step(self) -> int:
        return self._episodes()

    def _budget_left(self) -> int | None:
        """Episodes that may still be started (None: no episode budget)."""
        b = self.cfg.budget
        if not b.episodes:
            return None
        return b.episodes - self._episodes() - self.fleet.in_flight()

    def budget_reached(self) -> str:
        """The budget that is used up, or "" if none is."""
        b = self.cfg.budget
        if b.episodes and self._episodes() >= b.episodes:
            return "episodes"
        if b.robot_hours and self._prior_hours + self.tracker.robot_hours >= b.robot_hours:
            return "robot_hours"
        if b.updates and self.learner_step >= b.updates:
            return "updates"
        return ""

    def run(self) -> SessionSummary:
        """Practise until a budget is used up or Ctrl-C (the first one stops after the robots'
        current episodes; a second one raises KeyboardInterrupt), then shut down cleanly."""
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        t0 = time.perf_counter()
        try:
            if not self._started:
                self.start()
            self._practice_t0 = time.perf_counter()
            busy = False
            while not self._stop.is_set():
                reached = self.budget_reached()
                if reached:
                    log.info("session %s: budget %s reached", self.session_id, reached)
                    break
                self._dispatch()
                self._collect(timeout_s=0.0 if busy else 0.5)
                busy = self._learn_step()
                self._maybe_status()
        except BaseException:
            self._stopped_by = "error" if not self._stop.is_set() else "interrupt"
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            summary = self.shutdown(wall_s=time.perf_counter() - t0)
        return summary

    def request_stop(self) -> None:
        """Stop after the robots' current episodes (what the first Ctrl-C does)."""
        self._stopped_by = "interrupt"
        self._stop.set()

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt
        self.on_status("Ctrl-C: stopping after the robots' current episodes (Ctrl-C again to abort them)")
        self.request_stop()

    def _dispatch(self) -> None:
        self.fleet.dispatch(self._budget_left)

    def _collect(self, timeout_s: float) -> None:
        for robot_id, rep in self.fleet.collect(timeout_s):
            self._record(robot_id, rep)

    def _record(self, robot_id: str, rep: EpisodeReport) -> None:
        self.tracker.add(_outcome(robot_id, rep))
        if self._metrics is not None:
            row = self.tracker.robot_row(robot_id)
            w = self.tracker.window
            self._metrics.log(
                {
                    f"robot/{robot_id}/success@{w}": row[f"success@{w}"],
                    f"robot/{robot_id}/takeovers_per_episode": row["takeovers/ep"],
                    f"robot/{robot_id}/episode_steps": rep.steps,
                    "fleet/episodes": self._episodes(),
                    "fleet/learner_step": self.learner_step,
                },
                self._step(),
            )

    def robot_statuses(self, timeout_s: float = 30.0) -> list[ActorStatus]:
        """Every robot's status, asked of all actors at once (a group answers for its robots)."""
        return self.fleet.statuses(timeout_s)

    def _refresh_live(self, timeout_s: float = 30.0) -> None:
        for s in self.robot_statuses(timeout_s):
            self.tracker.set_live(
                s.robot_id, RobotLive(s.state, s.policy_version, s.weight_loads, dict(s.events))
            )

    @property
    def practice_s(self) -> float:
        """Seconds practising so far (0 before practice starts)."""
        return time.perf_counter() - self._practice_t0 if self._practice_t0 else 0.0

    def _learner_line(self) -> dict[str, Any]:
        el = time.perf_counter() - self._practice_t0 if self._practice_t0 else 0.0
        return {
            "step": self.learner_step,
            "published": self.version,
            "updates/s": rate(self._updates_while_running, self._update_s)
            if self._updates_while_running
            else float("nan"),
            "wall_s": round(el),
        }

    def _maybe_status(self, force: bool = False) -> None:
        every = self.cfg.status_every_s
        now = time.monotonic()
        if not force and (not every or now - self._last_status < every):
            return
        self._last_status = now
        self._refresh_live()
        self.on_status(self.tracker.status_table(self._learner_line(), f"session {self.session_id}"))

    # -- shutdown -------------------------------------------------------------------------------------
    def shutdown(self, wall_s: float = float("nan")) -> SessionSummary:
        """Let robots finish their current episode, label and publish the rest, close everything.

        Idempotent; returns the summary (also written to ``<out>/summary.json``).
        """
        import ray

        if self._closed:
            return self._summary(wall_s)
        self._closed = True
        try:
            deadline = time.monotonic() + self.cfg.stop_timeout_s
            while self.fleet.in_flight() and time.monotonic() < deadline:
                self._collect(timeout_s=1.0)
            late = [r.robot_id for r in self.robots if r.running is not None]
            if late:
                log.error(
                    "robots %s did not finish their episode within %.0f s; their steps so far are recovered "
                    "from the store's WAL as aborted episodes",
                    late,
                    self.cfg.stop_timeout_s,
                )
            if self._started:
                self._refresh_live()
            steps_s = (
                rate(self.tracker.steps, time.perf_counter() - self._practice_t0)
                if self._practice_t0
                else float("nan")
            )
            self._steps_per_s = steps_s
            if self.learner is not None:
                if self._learn_future is not None:
                    self._on_tick(ray.get(self._learn_future))
                    self._learn_future = None
                tick = self._learner_call("finish")
                self.learner_step = tick.step
                if tick.version > self.version and self.robots:
                    self._broadcast(tick.version)
        finally:
            if self.console is not None:
                self.console.stop()
                self.console = None
            self.fleet.close()
            if self.learner is not None:
                self._learner_call("close")
                if self.remote_learner:
                    ray.kill(self.learner)
            if (self.out / "store" / "store.json").exists() and self.directory.opened:
                with EpisodeStore.open(self.out / "store") as store:  # recovers WALs of robots that died
                    n_rec = sum(m.extra.get("recovered") == "true" for m in store.episodes())
                if n_rec:
                    log.warning(
                        "session %s: the store holds %d recovered (aborted) episodes", self.session_id, n_rec
                    )
            if self._metrics is not None:
                self._metrics.close()
            if self._owns_ray:
                ray.shutdown()
        summary = self._summary(wall_s)
        self.directory.close(dataclasses.asdict(summary), self._stopped_by)
        return summary

    def _summary(self, wall_s: float) -> SessionSummary:
        return SessionSummary(
            session_id=self.session_id,
            out=str(self.out),
            rows=self.tracker.summary_rows(),
            episodes=self.tracker.episodes,
            steps=self.tracker.steps,
            robot_hours=self.tracker.robot_hours,
            learner_step=self.learner_step,
            head_version=self.version,
            wall_s=wall_s,
            actors_start_s=self.actors_start_s,
            steps_per_s=getattr(self, "_steps_per_s", float("nan")),
            updates_per_s=rate(self._updates_while_running, self._update_s),
            broadcast_ms=self.broadcast_ms,
            stopped_by=self._stopped_by,
        )
