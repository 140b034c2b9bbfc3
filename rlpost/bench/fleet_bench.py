"""`rlpost bench fleet`: how a fleet of simulated robots on Ray keeps time, and how soon a new head drives it.

Every point is a practice session without a learner (:class:`rlpost.session.Session`, the
same actors, packing and broadcast as `rlpost practice`) with ``robots`` simulated robots,
``robots_per_actor`` of them per actor process, acting in real time with a random-weight
policy built from ``policy`` and saved locally. While they practise for ``seconds``, the
bench publishes ``publishes`` new heads through :meth:`Session.offer_head`:

  fleet    actor start-up (until every actor answers), env steps/s of all robots against
           the target robots x hz, and the share of on-time control steps, read from the
           steps the robots recorded: a step is on time when its observation came within
           ``late_tolerance`` of a period after the previous one.
  weights  per publish: ms until every actor acknowledged the offer, and ms until every
           robot acted on the new head: each robot's control loop stamps when it first
           planned an action with a head version (``ActorStatus.acting_since_ns``, the
           host's monotonic clock, which the driver shares on one machine).
  bytes    what a publish ships (the head) against the whole model (backbone + head).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from actors.config import ActorConfig, ControlConfig
from rlpost.bench.fleet_rows import (
    FleetPoint,
    Publish,
    bench_points,
    bytes_row,
    fleet_row,
    step_timing,
    weights_row,
)
from rlpost.data.episode_store import EpisodeStore
from rlpost.metrics import LoggerConfig
from rlpost.policy import VLA, ExpertConfig, PolicyConfig, TinyBackboneConfig, save_checkpoint
from rlpost.session import PracticeConfig, RayConfig, Session, SessionSummary
from rlpost.sim import SimConfig, make_robot

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often the driver asks the robots whether they act on a new head yet


def _bench_policy() -> PolicyConfig:
    # Small enough that 16 robots at 10 Hz can share 2 cores; dims come from the sim.
    return PolicyConfig(
        horizon=8,
        num_steps=5,
        cameras=["top"],
        tiny=TinyBackboneConfig(width=64, grid=4, keypoints=8, vision_depth=1, fusion_depth=1),
        expert=ExpertConfig(width=64, depth=2),
    )


@dataclass
class FleetBenchConfig:
    """Settings of `rlpost bench fleet`."""

    robots: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])  # fleet sizes, one point each
    # Packings (RayConfig.robots_per_actor): every fleet size runs once per packing, capped at
    # its size (1 robot packed 4 per actor is 1 actor); repeats are dropped.
    robots_per_actor: list[int] = field(default_factory=lambda: [1, 4])
    seconds: float = 15.0  # practice per point once the actors are up
    publishes: int = 3  # heads published per point, spread evenly over `seconds`
    late_tolerance: float = 0.1  # a step more than this fraction of a period late is not on time
    act_timeout_s: float = 30.0  # every robot must act on a published head within this
    task: str = "tabletop"
    sim: SimConfig = field(default_factory=lambda: SimConfig(max_steps=50))
    control: ControlConfig = field(
        default_factory=lambda: ControlConfig(realtime=True, execute=4, lead_steps=2)
    )  # the practice session's chunking, in real time
    sim_operator: bool = False  # a simulated operator would drive a random policy's robots most of the time
    actor_num_cpus: float = 1.0  # Ray CPUs per actor process (the local Ray is sized to fit)
    policy: PolicyConfig = field(
        default_factory=_bench_policy
    )  # random weights; state/action dims: the sim's
    seed: int = 0
    out: str = ""  # write the results as JSON here when set

    def __post_init__(self) -> None:
        if not self.robots or min(self.robots) < 1:
            raise ValueError(f"bench fleet: robots={self.robots} must list fleet sizes >= 1")
        if not self.robots_per_actor or min(self.robots_per_actor) < 1:
            raise ValueError(f"bench fleet: robots_per_actor={self.robots_per_actor} must list packings >= 1")
        if self.seconds <= 0 or self.act_timeout_s <= 0:
            raise ValueError(
                f"bench fleet: seconds={self.seconds} and act_timeout_s={self.act_timeout_s} must be > 0"
            )
        if self.publishes < 1:
            raise ValueError(
                f"bench fleet: publishes={self.publishes} must be >= 1 (the weights row needs one)"
            )
        if not 0 < self.late_tolerance < 1:
            raise ValueError(
                f"bench fleet: late_tolerance={self.late_tolerance} must be in (0, 1) of a period"
            )
        if not self.control.realtime:
            raise ValueError("bench fleet: control.realtime=false has no wall-clock ticks to be on time for")
        if self.sim.task != self.task:
            self.sim = dataclasses.replace(self.sim, task=self.task)

    @property
    def hz(self) -> float:
        """The control rate the robots keep (control.hz, else the sim's declared rate)."""
        return self.control.hz or self.sim.control_hz


# ------------------------------------------------------------------------------ measuring
class FleetBenchError(RuntimeError):
    """A point could not be measured (robots that never act on a head, a session that does not stop)."""


@dataclass
class FleetBenchResult:
    """Everything measured; ``fleet``, ``weights`` and ``bytes`` are the three tables' rows."""

    fleet: list[dict[str, object]]
    weights: list[dict[str, object]]
    bytes: list[dict[str, object]]
    points: list[FleetPoint]
    setup: dict[str, object]


@dataclass(frozen=True)
class _SimFacts:
    state_dim: int
    action_dim: int
    episode_steps: int  # the sim's step limit (its task default when sim.max_steps is unset)


def _sim_facts(cfg: FleetBenchConfig) -> _SimFacts:
    robot = make_robot(cfg.task, cfg.sim)
    try:
        spec = robot.robot_spec
        return _SimFacts(spec.state_dim, spec.action_dim, int(robot.max_steps))
    finally:
        robot.close()


def _fit(policy: PolicyConfig, sim: _SimFacts) -> PolicyConfig:
    return dataclasses.replace(policy, state_dim=sim.state_dim, action_dim=sim.action_dim)


def _ensure_ray(cfg: FleetBenchConfig) -> bool:
    """Start a local Ray sized for the largest point unless one is up; returns whether it was started."""
    import ray

    need = max(-(-n // p) for n, p in bench_points(cfg.robots, cfg.robots_per_actor)) * cfg.actor_num_cpus
    if ray.is_initialized():
        have = ray.cluster_resources().get("CPU", 0.0)
        if have < need:
            raise FleetBenchError(
                f"the running Ray has {have:g} CPUs; the largest point needs {need:g} "
                f"(actors x actor_num_cpus={cfg.actor_num_cpus:g}): lower actor_num_cpus or the robot counts"
            )
        return False
    # Logical CPUs may exceed the cores: this bench measures how the real ones are shared.
    ray.init(num_cpus=max(os.cpu_count() or 1, math.ceil(need)), include_dashboard=False, log_to_driver=False)
    return True


def _practice_config(
    cfg: FleetBenchConfig, n: int, p: int, policy_dir: Path, out: Path, episode_steps: int
) -> PracticeConfig:
    return PracticeConfig(
        out=str(out),
        policy_checkpoint=str(policy_dir),
        task=cfg.task,
        robots=n,
        actor=ActorConfig(
            policy=str(policy_dir),
            task=cfg.task,
            sim=cfg.sim,
            sim_operator=cfg.sim_operator,
            control=cfg.control,
        ),
        learn=False,  # heads come from the bench, through the session's broadcast
        ray=RayConfig(robots_per_actor=p, actor_num_cpus=cfg.actor_num_cpus, actor_max_restarts=0),
        status_every_s=0.0,
        stop_timeout_s=60.0 + 2 * episode_steps / cfg.hz,  # the episodes in flight finish first
        seed=cfg.seed,
        logger=LoggerConfig(wandb_mode="disabled"),
    )


def _wait_acting(session: Session, version: int, t_pub_ns: int, timeout_s: float) -> dict[str, float]:
    """Poll the robots until each has planned an action with ``version``; their own stamps give the times."""
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = session.robot_statuses()
        late = [s.robot_id for s in statuses if s.acting_version < version]
        if not late:
            return {s.robot_id: (s.acting_since_ns - t_pub_ns) / 1e6 for s in statuses}
        if time.monotonic() > deadline:
            raise FleetBenchError(
                f"robots {late} did not act on head version {version} within {timeout_s:g} s of its "
                f"publish (they act on {[s.acting_version for s in statuses if s.robot_id in late]})"
            )
        time.sleep(POLL_S)


def _run_point(
    cfg: FleetBenchConfig,
    n: int,
    p: int,
    policy_dir: Path,
    heads: list[dict[str, np.ndarray]],
    out: Path,
    episode_steps: int,
    say: Callable[[str], None],
) -> FleetPoint:
    session = Session(
        _practice_config(cfg, n, p, policy_dir, out, episode_steps), on_status=lambda text: None
    )
    result: list[SessionSummary | BaseException] = []
    runner: threading.Thread | None = None

    def practise() -> None:
        try:
            result.append(session.run())
        except BaseException as e:  # handed to the bench's thread, which re-raises it
            result.append(e)

    publishes: list[Publish] = []
    try:
        session.start()
        actors = -(-n // p)
        say(f"  {actors} actor(s) up in {session.actors_start_s:.1f} s; practising {cfg.seconds:g} s")
        runner = threading.Thread(target=practise, name="bench-fleet-session", daemon=True)
        t0 = time.monotonic()
        runner.start()
        for k, head in enumerate(heads):
            version = k + 1
            time.sleep(max(0.0, t0 + cfg.seconds * version / (len(heads) + 1) - time.monotonic()))
            t_pub = time.monotonic_ns()
            ack_ms = session.offer_head(head, version)
            acting = _wait_acting(session, version, t_pub, cfg.act_timeout_s)
            publishes.append(Publish(version, ack_ms, acting))
            say(
                f"  head v{version}: acked by {actors} actor(s) in {ack_ms:.0f} ms, "
                f"all {n} robot(s) acting on it after {max(acting.values()):.0f} ms"
            )
        time.sleep(max(0.0, t0 + cfg.seconds - time.monotonic()))
    finally:
        session.request_stop()
        if runner is None:
            session.shutdown()  # start() failed: close whatever actors came up
        else:
            runner.join(session.cfg.stop_timeout_s + 120)
    if runner.is_alive() or not result:
        raise FleetBenchError(f"the session of {n} robot(s) did not stop within its stop timeout")
    if isinstance(result[0], BaseException):
        raise result[0]
    summary = result[0]
    with EpisodeStore.open(out / "store", create=False, recover=False) as store:
        t_ns = [
            store.read_frames(m.episode_id, np.arange(m.length), with_images=False).t_ns
            for m in store.episodes(session_id=summary.session_id)
        ]
    return FleetPoint(
        robots=n,
        robots_per_actor=p,
        actors=-(-n // p),
        start_s=summary.actors_start_s,
        practice_s=summary.wall_s,
        episodes=summary.episodes,
        steps=summary.steps,
        steps_per_s=summary.steps_per_s,
        target_steps_per_s=n * cfg.hz,
        timing=step_timing(t_ns, cfg.hz, cfg.late_tolerance),
        publishes=publishes,
        head_bytes=sum(a.nbytes for a in heads[0].values()),
    )


def run_fleet_bench(
    cfg: FleetBenchConfig,
    size_policies: dict[str, PolicyConfig] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> FleetBenchResult:
    """Measure every (robots, robots_per_actor) point of ``cfg`` on a local Ray.

    Args:
        cfg: the points, the policy and the robots' control settings.
        size_policies: more policies (name -> config, built with random weights) for the bytes table.
        on_progress: called with one line per stage of each point.

    Returns:
        The three tables' rows, every point's measurements and the setup.

    Raises:
        FleetBenchError: a running Ray too small for the largest point, a robot that never
            acts on a published head within ``act_timeout_s``, a session that does not stop.
    """
    import ray

    say = on_progress or (lambda line: log.info("%s", line))
    torch.manual_seed(cfg.seed)
    sim = _sim_facts(cfg)
    policy_cfg = _fit(cfg.policy, sim)
    vla = VLA(policy_cfg).eval()
    sizes = [bytes_row("bench policy", vla)]
    for name, pc in (size_policies or {}).items():
        sizes.append(bytes_row(name, VLA(_fit(pc, sim))))
    heads = []
    for version in range(1, cfg.publishes + 1):  # a different random head per publish, same shapes
        torch.manual_seed(cfg.seed + version)
        heads.append(VLA(policy_cfg).head_state())
    points = bench_points(cfg.robots, cfg.robots_per_actor)
    started = _ensure_ray(cfg)
    measured: list[FleetPoint] = []
    try:
        with tempfile.TemporaryDirectory(prefix="rlpost-bench-fleet-") as d:
            policy_dir = save_checkpoint(vla, Path(d) / "policy")
            for i, (n, p) in enumerate(points):
                say(f"[{i + 1}/{len(points)}] {n} robot(s), {p} per actor: starting")
                out = Path(d) / f"robots-{n}-per-{p}"
                point = _run_point(cfg, n, p, policy_dir, heads, out, sim.episode_steps, say)
                measured.append(point)
                say(
                    f"  {point.steps} steps, {point.steps_per_s:.1f} steps/s (target "
                    f"{point.target_steps_per_s:g}), {100 * point.timing.on_time_share:.0f}% on time"
                )
    finally:
        if started:
            ray.shutdown()
    return FleetBenchResult(
        fleet=[fleet_row(p) for p in measured],
        weights=[weights_row(p) for p in measured],
        bytes=sizes,
        points=measured,
        setup={
            "task": cfg.task,
            "hz": cfg.hz,
            "execute": cfg.control.execute,
            "lead_steps": cfg.control.lead_steps,
            "chunk_period_ms": 1e3 * cfg.control.execute / cfg.hz,
            "image_size": cfg.sim.image_size,
            "episode_steps": sim.episode_steps,
            "seconds": cfg.seconds,
            "late_tolerance": cfg.late_tolerance,
            "actor_num_cpus": cfg.actor_num_cpus,
            "cpu_cores": os.cpu_count(),
            "sim_operator": cfg.sim_operator,
        },
    )
