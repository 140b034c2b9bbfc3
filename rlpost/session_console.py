"""The practice session's side of the operator console (wiring: it sees actors/ and reward_models/).

:class:`SessionConsole` is the :class:`rlpost.console.ConsoleBackend` of a running
:class:`rlpost.session.Session`:

- a poller thread asks each robot actor for a snapshot (status + latest JPEG frames; one
  Ray call per actor process, every ``console.refresh_s``) while a page is open, and turns
  counters that grew (late chunks, e-stop holds, reconnects, errors) and robots that do
  not answer into alerts;
- a second thread estimates each robot's progress with the session's reward model every
  ``console.progress_every_s`` (the frames come from the actor's live view; the model
  runs here, never in a control loop);
- commands go to each robot's operator channel with :class:`actors.operator_channel.OperatorClient`,
  the same wire messages a teleop device sends, so the actor cannot tell them apart;
- session numbers come from the session's FleetTracker and learner tick.

Encoding frames on request, one call per actor and pausing while no page is open keep
the robots' control loops out of the console's way.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors.operator_channel import OperatorClient, OperatorRefused
from actors.runner import RobotSnapshot
from reward_models.live import LiveProgress, WindowFrames
from rlpost.console import (
    Alert,
    CommandResult,
    ConsoleConfig,
    ConsoleServer,
    ConsoleView,
    RobotView,
    SessionView,
)
from rlpost.console.view import ALL_ROBOTS, rolling_success

if TYPE_CHECKING:
    from rlpost.session import Session

log = logging.getLogger(__name__)

# ActorStatus counters that become alerts when they grow: kind -> what it means.
_EVENT_ALERTS = {
    "late_chunk": "steps held: inference was late",
    "estop_hold": "e-stop: holding position",
    "nonfinite": "NaN/Inf action held",
    "policy_error": "policy errors",
}
_COUNTER_ALERTS = {
    "reconnects": "robot reconnects",
    "weight_errors": "head weights refused",
    "commands_refused": "operator commands refused",
    "control_overruns": "control periods overran",
}
STALE_AFTER_POLLS = 3  # a robot whose actor did not answer this many polls in a row is disconnected


class OperatorCommands:
    """Sends the console's commands to robots' operator channels: one OperatorClient per robot.

    ``endpoint_of(robot_id)`` names a robot's channel (asked once per robot, on its first command).
    """

    def __init__(
        self, robot_ids: list[str], endpoint_of: Callable[[str], str], operator_id: str, curve: Any = None
    ) -> None:
        """``curve``: the client keys (rlpost.transport.curve.CurveKeys) when the channels use CURVE."""
        self.robot_ids, self.endpoint_of, self.operator_id = list(robot_ids), endpoint_of, operator_id
        self.curve = curve
        self._clients: dict[str, tuple[OperatorClient, threading.Lock]] = {}
        self._lock = threading.Lock()

    def send(self, robot_id: str, kind: str) -> list[CommandResult]:
        """Send ``kind`` to one robot, or to every robot (``"*"``, in parallel); wait for the acks.

        Raises:
            KeyError: an unknown robot id (names the known ones).
        """
        if robot_id != ALL_ROBOTS and robot_id not in self.robot_ids:
            raise KeyError(f"unknown robot {robot_id!r}; this session has {self.robot_ids}")
        if robot_id != ALL_ROBOTS:
            return [self._send(robot_id, kind)]
        with concurrent.futures.ThreadPoolExecutor(min(16, len(self.robot_ids))) as pool:
            return list(pool.map(lambda r: self._send(r, kind), self.robot_ids))

    def close(self) -> None:
        with self._lock:
            for client, _ in self._clients.values():
                client.close()
            self._clients.clear()

    def _client(self, robot_id: str) -> tuple[OperatorClient, threading.Lock]:
        with self._lock:
            if robot_id not in self._clients:
                client = OperatorClient(
                    self.endpoint_of(robot_id), robot_id, self.operator_id, curve=self.curve
                )
                self._clients[robot_id] = (client, threading.Lock())
            return self._clients[robot_id]

    def _send(self, robot_id: str, kind: str) -> CommandResult:
        try:
            client, lock = self._client(robot_id)
            with lock:  # a zmq socket is not thread-safe, and acks pair with their command
                client.send_kind(kind)  # type: ignore[arg-type]
        except OperatorRefused as e:
            return CommandResult(robot_id, kind, False, f"refused: {e}")
        except Exception as e:  # an unreachable actor or a Ray error: the page shows why, per robot
            log.error("console: %s to robot %r failed: %s", kind, robot_id, e)
            return CommandResult(robot_id, kind, False, f"{type(e).__name__}: {e}")
        return CommandResult(robot_id, kind, True)


@dataclass
class _Live:
    snap: RobotSnapshot | None = None
    error: str = ""  # why the last poll got nothing ("" when it answered)
    misses: int = 0
    progress: float = float("nan")
    progress_episode: str = ""


class SessionConsole:
    """Serves the console of one session; ``start()`` after the robots are up, ``stop()`` before they go."""

    def __init__(self, session: Session, cfg: ConsoleConfig) -> None:
        self.session, self.cfg = session, cfg
        self.robot_ids = list(session.robot_ids)
        self._live = {r: _Live() for r in self.robot_ids}
        self._alerts: dict[tuple[str, str], Alert] = {}
        self._seen: dict[tuple[str, str], int] = {}  # the highest value of each alerting counter
        op = session.cfg.actor.operator  # the console is one more device on the robots' channels
        curve = op.curve if op.security == "curve" else None
        self.commands = OperatorCommands(self.robot_ids, self._endpoint, cfg.operator_id, curve)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._last_view = 0.0
        self._threads: list[threading.Thread] = []
        self.progress: LiveProgress | None = None
        if cfg.progress_every_s and session.cfg.reward_model:
            self.progress = LiveProgress.load(session.cfg.reward_model, session.cfg.policy_checkpoint)
        self.server = ConsoleServer(cfg, self)

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> str:
        """Serve the page and start the pollers; returns the URL (with the token)."""
        url = self.server.start()
        self.server.write_file(self.session.out)
        self._threads = [threading.Thread(target=self._poll_loop, name="console-poll", daemon=True)]
        if self.progress is not None:
            self._threads.append(
                threading.Thread(target=self._progress_loop, name="console-progress", daemon=True)
            )
        for t in self._threads:
            t.start()
        return url

    def stop(self) -> None:
        """Stop the pollers and the server, close the device sockets, remove console.json."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(10.0)
        self.server.stop()
        self.commands.close()
        (self.session.out / "console.json").unlink(missing_ok=True)

    # -- ConsoleBackend ---------------------------------------------------------------------------------
    def view(self) -> ConsoleView:
        first = self._last_view == 0.0
        self._last_view = time.monotonic()
        if first or not any(lv.snap for lv in self._live.values()):
            self._wake.set()
        with self._lock:
            robots = [self._robot_view(r) for r in self.robot_ids]
            alerts = sorted(self._alerts.values(), key=lambda a: a.last_t, reverse=True)
        return ConsoleView(self._session_view(), robots, alerts)

    def frame(self, robot_id: str, camera: str) -> bytes | None:
        lv = self._live.get(robot_id)
        snap = lv.snap if lv is not None else None
        return snap.jpeg.get(camera) if snap is not None else None

    def command(self, robot_id: str, kind: str) -> list[CommandResult]:
        results = self.commands.send(robot_id, kind)
        self._wake.set()  # show the effect at once
        return results

    def _endpoint(self, robot_id: str) -> str:
        snap = self._live[robot_id].snap
        if snap is not None:
            return snap.status.operator_endpoint
        import ray

        actor, grouped = self._actor_of(robot_id)
        st = ray.get(actor.status.remote(), timeout=10.0)
        for s in st if grouped else [st]:
            if s.robot_id == robot_id:
                return s.operator_endpoint
        raise KeyError(f"robot {robot_id!r}: its actor does not report it")

    # -- polling ------------------------------------------------------------------------------------------
    def _active(self) -> bool:
        return self._last_view > 0 and time.monotonic() - self._last_view < self.cfg.idle_after_s

    def _actor_of(self, robot_id: str) -> tuple[Any, bool]:
        for r in self.session.robots:
            if r.robot_id == robot_id:
                return r.actor, r.grouped
        raise KeyError(f"robot {robot_id!r} has no actor")

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.cfg.refresh_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._active():
                try:
                    self.poll()
                except Exception:  # keep serving: the next poll may succeed; the page shows stale data
                    log.exception("console: polling the robots failed")

    def poll(self, timeout_s: float | None = None) -> None:
        """One round of snapshots from every robot actor (what the poller thread does each refresh)."""
        import ray

        owners: dict[Any, list[str]] = {}
        grouped: dict[Any, bool] = {}
        for r in self.session.robots:
            owners.setdefault(r.actor, []).append(r.robot_id)
            grouped[r.actor] = r.grouped
        refs = {a.snapshot.remote(): a for a in owners}
        wait_s = timeout_s if timeout_s is not None else max(2.0, 2 * self.cfg.refresh_s)
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=wait_s)
        now = time.time()
        answered: set[str] = set()
        for ref in done:
            actor = refs[ref]
            try:
                got = ray.get(ref)
            except ray.exceptions.RayError as e:
                for rid in owners[actor]:
                    self._missed(rid, f"actor error: {type(e).__name__}: {str(e).splitlines()[0]}", now)
                    answered.add(rid)
                continue
            for snap in got if grouped[actor] else [got]:
                self._update(snap, now)
                answered.add(snap.status.robot_id)
        for rid in self.robot_ids:
            if rid not in answered:
                self._missed(rid, f"no answer within {wait_s:.1f} s", now)

    def _update(self, snap: RobotSnapshot, now: float) -> None:
        st, rid = snap.status, snap.status.robot_id
        with self._lock:
            lv = self._live[rid]
            lv.snap, lv.error, lv.misses = snap, "", 0
            if lv.progress_episode != st.episode_id:
                lv.progress, lv.progress_episode = float("nan"), st.episode_id
            if st.mode in ("disconnected", "estopped"):
                kind = "disconnected" if st.mode == "disconnected" else "estop"
                self._alert(rid, kind, f"robot {st.mode}", now, bump=False)
            for key, text in _EVENT_ALERTS.items():
                self._count(rid, key, st.events.get(key, 0), text, now)
            for key, text in _COUNTER_ALERTS.items():
                self._count(rid, key, int(getattr(st, key)), text, now)
            if st.last_refusal:
                self._alert(rid, "commands_refused", f"last refusal: {st.last_refusal}", now, bump=False)

    def _missed(self, rid: str, why: str, now: float) -> None:
        with self._lock:
            lv = self._live[rid]
            lv.misses += 1
            lv.error = why
            if lv.misses >= STALE_AFTER_POLLS or why.startswith("actor error"):
                self._alert(rid, "disconnected", f"status: {why}", now)

    def _count(self, rid: str, key: str, value: int, text: str, now: float) -> None:
        # Counters only grow, but a status read between an episode's end and its tally can dip.
        seen = self._seen.get((rid, key), 0)
        if value > seen:
            self._seen[(rid, key)] = value
            self._alert(rid, key, text, now, by=value - seen)

    def _alert(self, rid: str, kind: str, text: str, now: float, bump: bool = True, by: int = 1) -> None:
        """Add to the (robot, kind) alert; ``bump=False`` only refreshes a standing condition's text."""
        old = self._alerts.get((rid, kind))
        if old is None:
            self._alerts[(rid, kind)] = Alert(rid, kind, text, by, now, now)
        elif bump or old.text != text:
            count = old.count + (by if bump else 0)
            self._alerts[(rid, kind)] = Alert(rid, kind, text, count, old.first_t, now)

    # -- progress -----------------------------------------------------------------------------------------
    def _progress_loop(self) -> None:
        while not self._stop.wait(self.cfg.progress_every_s):
            if self._active():
                try:
                    self.estimate_progress()
                except Exception:
                    log.exception("console: progress estimate failed")

    def estimate_progress(self) -> None:
        """Progress of every robot with an episode in flight (what the progress thread does)."""
        import ray

        assert self.progress is not None
        asks: list[tuple[str, str, Any]] = []
        for rid in self.robot_ids:
            snap = self._live[rid].snap
            if snap is None or not snap.status.episode_id or snap.status.episode_step < 1:
                continue
            actor, grouped = self._actor_of(rid)
            steps = self.progress.window_steps(snap.status.episode_step)
            ref = actor.recent_frames.remote(rid, steps) if grouped else actor.recent_frames.remote(steps)
            asks.append((rid, snap.status.episode_id, ref))
        if not asks:
            return
        done, _ = ray.wait([a[2] for a in asks], num_returns=len(asks), timeout=10.0)
        ready = set(done)
        got = [(rid, eid, w) for rid, eid, ref in asks if ref in ready and (w := ray.get(ref)) is not None]
        if not got:
            return
        values = self.progress.estimate([WindowFrames(w.images, w.state, w.instruction) for _, _, w in got])
        with self._lock:
            for (rid, eid, _), p in zip(got, values, strict=True):
                lv = self._live[rid]
                if lv.snap is not None and lv.snap.status.episode_id == eid:
                    lv.progress, lv.progress_episode = float(p), eid

    # -- views ----------------------------------------------------------------------------------------------
    def _robot_view(self, rid: str) -> RobotView:
        lv = self._live[rid]
        if lv.snap is None:
            state = "disconnected" if lv.misses >= STALE_AFTER_POLLS else "starting"
            return RobotView(rid, state, "", "", 0, 0, -1, float("nan"), [], -1, 0, 0, lv.error)
        st = lv.snap.status
        state = "disconnected" if lv.misses >= STALE_AFTER_POLLS else st.mode
        return RobotView(
            robot_id=rid,
            state=state,
            instruction=st.instruction,
            episode_id=st.episode_id,
            episode_step=st.episode_step,
            episodes=st.episode,
            policy_version=st.policy_version,
            progress=lv.progress if lv.progress_episode == st.episode_id and st.episode_id else float("nan"),
            cameras=sorted(lv.snap.jpeg),
            frame_seq=lv.snap.frame_seq,
            late_chunks=st.events.get("late_chunk", 0),
            overruns=st.control_overruns,
            error=lv.error,
        )

    def _session_view(self) -> SessionView:
        s, n = self.session, self.cfg.recent_episodes
        recent = list(s.tracker.all)[-n:]
        outcomes = [e.outcome for e in recent]
        practice_s = s.practice_s
        return SessionView(
            session_id=s.session_id,
            episodes=s.tracker.episodes,
            success_rate=sum(o == "success" for o in outcomes) / len(outcomes) if outcomes else float("nan"),
            recent=n,
            success_curve=rolling_success(outcomes, max(1, min(20, n))),
            interventions_per_episode=sum(e.takeovers for e in recent) / len(recent)
            if recent
            else float("nan"),
            episodes_per_hour=s.tracker.episodes / (practice_s / 3600.0) if practice_s > 0 else float("nan"),
            learner_step=s.learner_step,
            head_version=s.version,
            practice_s=practice_s,
            progress_model=self.progress.name if self.progress is not None else "",
        )
