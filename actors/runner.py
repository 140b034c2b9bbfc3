"""RobotRunner: one robot's whole life next to its robot, as a plain class (Ray wraps it in RobotActor).

It owns the robot, one policy copy, the episode store writer, the operator channel, the
weight source and (for sims) a simulated operator device, and drives the
:class:`ControlLoop` episode after episode: reconnecting to a robot that went away,
stopping when the e-stop is latched, pausing (robot held, no action sent) when the store
is full, and counting what happened for ``status()``. A runner rebuilt after its process
died (Ray restarts the actor) continues its robot's seeds after the last one in the store.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from actors.config import ActorConfig
from actors.control_loop import ControlLoop, EpisodeReport, EStopLatched
from actors.devices.sim_operator import SimOperatorDevice
from actors.live_view import FrameWindow, LiveView
from actors.operator_channel import OperatorChannel, OperatorClient
from actors.weights import HeadDirectory, LatestWeights
from actors.zmq_robot import RobotDisconnected, ZmqRobot
from rlpost.data.episode_store import EpisodeStore
from rlpost.data.store_error import StoreFullError
from rlpost.interfaces import Robot
from rlpost.schema import noise_scale_tag

log = logging.getLogger(__name__)

# paused: the store refused a write (disk full); the robot is held until a later run() succeeds
ActorState = Literal["idle", "running", "estopped", "disconnected", "paused", "closed"]
# What a person watching the robot needs to know (the console shows it).
RobotMode = Literal[
    "autonomous", "operator", "paused", "resetting", "estopped", "disconnected", "idle", "closed"
]


@dataclass(frozen=True)
class ActorStatus:
    """A robot actor's state and counters, for the console and tests."""

    robot_id: str
    state: ActorState
    episode: int  # episodes finished by this actor
    policy_version: int
    operator_endpoint: str
    steps: int
    intervention_steps: int
    outcomes: dict[str, int]
    events: dict[str, int]  # safety and loop events (late_chunk, no_action, nonfinite, estop_hold, ...)
    commands_received: int
    commands_refused: int
    last_refusal: str
    weight_loads: int
    weight_errors: int
    policy_errors: int
    reconnects: int
    control_overruns: int
    mode: RobotMode = "idle"
    episode_id: str = ""  # the episode in flight ("" between episodes)
    episode_step: int = 0  # steps recorded in it so far
    instruction: str = ""  # its instruction
    acting_version: int = -1  # head version of the latest action the policy planned (-1: none yet)
    acting_since_ns: int = 0  # time.monotonic_ns() when the robot first acted on acting_version


@dataclass(frozen=True)
class RobotSnapshot:
    """A robot's status and its latest camera frames (for the console)."""

    status: ActorStatus
    frame_seq: int  # increases with every observation; -1 before the first
    jpeg: dict[str, bytes]  # camera -> JPEG of the latest observation


class RobotRunner:
    """See the module docstring; build it with :meth:`from_config`."""

    def __init__(
        self,
        cfg: ActorConfig,
        loop: ControlLoop,
        channel: OperatorChannel,
        weights: HeadDirectory | LatestWeights,
        store: EpisodeStore,
        device: SimOperatorDevice | None = None,
        live: LiveView | None = None,
    ) -> None:
        self.cfg, self.loop, self.channel, self.weights, self.store = cfg, loop, channel, weights, store
        self.device = device
        self.live = live
        self.state: ActorState = "idle"
        self.episodes = self.steps = self.intervention_steps = self.reconnects = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.events: collections.Counter[str] = collections.Counter()
        # Seeds continue after this robot's episodes already in the store for this session, so
        # an actor that Ray restarted does not repeat the seeds its previous process used.
        used = [
            m.seed
            for m in store.episodes(robot_id=cfg.robot_id, session_id=cfg.session_id)
            if cfg.session_id and m.seed is not None and m.seed >= cfg.seed
        ]
        self.first_seed = max(used) + 1 if used else cfg.seed

    @classmethod
    def from_config(cls, cfg: ActorConfig) -> RobotRunner:
        """Build the robot, policy, store, channel and loop that ``cfg`` describes.

        Raises:
            ValueError: a policy that does not fit the robot (cameras, state or action dims).
            RobotDisconnected: robot=zmq and the robot-server does not answer.
        """
        from rlpost.policy import load_checkpoint  # torch: only where a policy runs
        from rlpost.sim import SimulatedOperator, make_robot, with_policy_cameras

        vla = load_checkpoint(cfg.policy).eval()
        vla.cfg = dataclasses.replace(vla.cfg, act_noise_scale=cfg.noise_scale)
        pc = vla.cfg
        robot: Robot
        if cfg.robot == "sim":  # a simulated robot renders the cameras its policy reads
            robot = make_robot(
                cfg.task, with_policy_cameras(dataclasses.replace(cfg.sim, task=cfg.task), pc.cameras)
            )
        else:
            robot = ZmqRobot(cfg.endpoint, cfg.bridge, cfg.robot_id)
        spec = robot.robot_spec
        if sorted(pc.cameras) != sorted(spec.cameras) or (pc.state_dim, pc.action_dim) != (
            spec.state_dim,
            spec.action_dim,
        ):
            raise ValueError(
                f"policy {cfg.policy} (cameras {pc.cameras}, S={pc.state_dim}, A={pc.action_dim}) does not fit "
                f"robot {cfg.robot_id!r} (cameras {sorted(spec.cameras)}, S={spec.state_dim}, A={spec.action_dim})"
            )
        if cfg.control.lead_steps + cfg.control.execute > pc.horizon:
            raise ValueError(
                f"control.execute={cfg.control.execute} + lead_steps={cfg.control.lead_steps} exceeds the "
                f"policy's horizon H={pc.horizon}"
            )
        weights = HeadDirectory(cfg.weights_dir) if cfg.weights_dir else LatestWeights()
        store = EpisodeStore.open(cfg.store)
        channel = OperatorChannel(cfg.robot_id, spec.action_dim, cfg.operator)
        device, sim_ids = None, frozenset()
        if cfg.sim_operator:
            op = SimulatedOperator(robot, dataclasses.replace(cfg.sim_operator_cfg, robot_id=cfg.robot_id))  # type: ignore[arg-type]
            curve = cfg.operator.curve if cfg.operator.security == "curve" else None
            client = OperatorClient(channel.endpoint, cfg.robot_id, op.cfg.operator_id, curve=curve)
            device, sim_ids = SimOperatorDevice(op, client), frozenset({op.cfg.operator_id})
        live = LiveView()
        loop = ControlLoop(
            robot,
            vla,
            store,
            control=cfg.control,
            safety=cfg.safety,
            operators=[channel],
            observers=[live, device] if device else [live],
            weights=weights,
            robot_id=cfg.robot_id,
            session_id=cfg.session_id,
            task=cfg.task,
            sim_operator_ids=sim_ids,
            episode_extra=noise_scale_tag(cfg.noise_scale),
        )
        return cls(cfg, loop, channel, weights, store, device, live)

    def run(self, episodes: int, estop_wait_s: float = 0.0) -> list[EpisodeReport]:
        """Run up to ``episodes`` episodes; stops early when the e-stop stays latched.

        Args:
            episodes: how many to run; episode i of this actor uses seed ``first_seed + i``.
            estop_wait_s: how long to wait for an operator's clear_estop before returning early.

        Raises:
            RobotDisconnected: the robot stayed away longer than ``cfg.reconnect_timeout_s``.
            StoreFullError: the store refused a write; state is "paused" and the robot held.
                Every step recorded stays in the store; a later ``run`` continues once space is back.
        """
        reports: list[EpisodeReport] = []
        while len(reports) < episodes:
            if self.loop.safety.estopped:
                self.state = "estopped"
                if not self.loop.wait_for_clear_estop(estop_wait_s):
                    log.warning(
                        "robot %r: e-stop latched; stopping after %d episodes",
                        self.cfg.robot_id,
                        len(reports),
                    )
                    break
            self.state = "running"
            try:
                report = self._episode_with_reconnect(self.first_seed + self.episodes)
            except StoreFullError as e:
                self.state = "paused"
                self.events["store_full"] += 1
                log.error("robot %r paused, held with no action sent: %s", self.cfg.robot_id, e)
                raise
            if report is None:
                continue  # e-stop latched between episodes
            reports.append(report)
            self._count(report)
        self.state = "estopped" if self.loop.safety.estopped else "idle"
        return reports

    def _episode_with_reconnect(self, seed: int) -> EpisodeReport | None:
        deadline = None
        while True:
            try:
                return self.loop.run_episode(seed)
            except ConnectionError as e:  # the reset got no answer: no episode was begun
                if self.loop.safety.estopped:
                    return None
                deadline = deadline or time.monotonic() + self.cfg.reconnect_timeout_s
                self.state = "disconnected"
                if time.monotonic() > deadline:
                    raise RobotDisconnected(
                        f"robot {self.cfg.robot_id!r} unreachable for {self.cfg.reconnect_timeout_s} s: {e}"
                    ) from e
                self.reconnects += 1
                log.warning("robot %r unreachable (%s); retrying", self.cfg.robot_id, e)
                time.sleep(0.2)
            except EStopLatched as e:  # pressed between episodes
                log.warning("%s", e)
                return None

    def _count(self, r: EpisodeReport) -> None:
        self.episodes += 1
        self.steps += r.steps
        self.intervention_steps += r.intervention_steps
        self.outcomes[r.meta.outcome] += 1
        self.events.update(r.events)
        if r.end_reason == "robot_disconnected":
            self.state = "disconnected"

    def offer_weights(self, tensors: dict[str, np.ndarray], version: int) -> bool:
        """Hand newer head weights to the policy (loaded between chunks); False if not newer.

        Raises:
            TypeError: this actor reads weights from a directory (cfg.weights_dir).
        """
        if not isinstance(self.weights, LatestWeights):
            raise TypeError(
                f"robot {self.cfg.robot_id!r} reads weights from {self.weights}; offer_weights is off"
            )
        return self.weights.offer(tensors, version)

    def status(self) -> ActorStatus:
        ch, w = self.channel.counters, self.loop.worker
        acting = self.loop.acting
        robot_reconnects = getattr(self.loop.robot, "reconnects", 0)
        ep = self.loop.current
        events = collections.Counter(self.events)
        if ep is not None:  # the episode in flight counts too: a console shows late chunks as they happen
            events.update(dict(ep.report.events))
        return ActorStatus(
            robot_id=self.cfg.robot_id,
            state=self.state,
            episode=self.episodes,
            policy_version=w.version,
            operator_endpoint=self.channel.endpoint,
            steps=self.steps,
            intervention_steps=self.intervention_steps,
            outcomes=dict(self.outcomes),
            events=dict(events),
            commands_received=ch.received,
            commands_refused=ch.refused,
            last_refusal=ch.last_error,
            weight_loads=w.weight_loads,
            weight_errors=w.weight_errors,
            policy_errors=w.policy_errors,
            reconnects=self.reconnects + robot_reconnects,
            control_overruns=self.loop.overruns,
            mode=self._mode(),
            episode_id=ep.meta.episode_id if ep is not None else "",
            episode_step=ep.report.steps if ep is not None else 0,
            instruction=ep.meta.instruction if ep is not None else "",
            acting_version=acting[0],
            acting_since_ns=acting[1],
        )

    def _mode(self) -> RobotMode:
        ep = self.loop.current
        if self.state in ("closed", "disconnected", "paused"):  # paused: the store is full
            return self.state
        if self.state == "estopped" or self.loop.safety.estopped:
            return "estopped"
        if ep is None:
            return "resetting" if self.state == "running" else "idle"
        return "paused" if ep.paused else "operator" if ep.human else "autonomous"

    def snapshot(self) -> RobotSnapshot:
        """Status plus the latest camera frames as JPEG (encoded now, at most once per observation)."""
        seq, jpeg = self.live.jpeg() if self.live is not None else (-1, {})
        return RobotSnapshot(self.status(), seq, jpeg)

    def recent_frames(self, steps: list[int]) -> FrameWindow | None:
        """Observations of the episode in flight at ``steps`` (for a progress estimate); None if none.

        The first call makes the live view hold enough history for these steps from then on.

        Raises:
            ValueError: a window longer than the live view may hold (actors.live_view.MAX_HISTORY).
        """
        if self.live is None or self.loop.current is None:
            return None
        nonzero = [s for s in steps if s > 0]
        if nonzero:
            self.live.keep(max(nonzero) - min(nonzero) + 1)
        return self.live.window(steps)

    def close(self) -> None:
        self.loop.close()
        self.channel.close()
        if self.device is not None:
            self.device.close()
        self.loop.robot.close()
        self.store.close()
        self.state = "closed"
