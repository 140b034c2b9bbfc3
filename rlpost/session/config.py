"""The schema of `rlpost practice`: PracticeConfig and the Ray and budget settings it nests.

Plain dataclasses (Hydra's ConfigStore registers PracticeConfig as ``practice``, see
rlpost.cli); their ``__post_init__`` refuses contradictory settings before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.config import ActorConfig, ControlConfig
from learner.config import LearnerConfig
from rlpost.console import ConsoleConfig
from rlpost.metrics import LoggerConfig


@dataclass
class RayConfig:
    """Where the session's actors run."""

    address: str = ""  # "": start a local Ray; "auto" or "host:port": join a running cluster
    num_cpus: int = 0  # local Ray only; 0: the machine's cores, raised to fit the session's actors
    include_dashboard: bool = False  # the dashboard costs ~200 MB
    log_to_driver: bool = False  # actors' log lines go to Ray's log files, not the terminal
    robot_resources: bool = False  # pin robot <id>'s actor with the custom resource {"robot:<id>": 1}
    actor_num_cpus: float = 1.0  # per robot actor (Ray gives it that many torch threads, 1 if fractional)
    robots_per_actor: int = 1  # >1: several simulated robots share one actor process
    actor_max_restarts: int = 2  # a crashed robot actor comes back (its in-flight episode is recovered)
    learner_actor: bool = False  # run the learner + labeler as a Ray actor instead of in the driver
    learner_gpus: float = 0.0  # > 0: the learner actor asks Ray for this many GPUs
    learner_num_cpus: float = 1.0

    def __post_init__(self) -> None:
        if self.robots_per_actor < 1:
            raise ValueError(f"ray.robots_per_actor={self.robots_per_actor} must be >= 1")
        if self.robot_resources and self.robots_per_actor > 1:
            raise ValueError(
                "ray.robot_resources pins one robot per actor to its host; it cannot be combined with "
                f"ray.robots_per_actor={self.robots_per_actor}"
            )
        if self.learner_gpus < 0 or self.actor_num_cpus <= 0 or self.learner_num_cpus <= 0:
            raise ValueError("ray: learner_gpus must be >= 0, actor_num_cpus and learner_num_cpus > 0")
        if self.learner_gpus > 0:
            self.learner_actor = True  # a GPU is asked for by an actor, not the driver
        if self.address and self.num_cpus:
            raise ValueError("ray.num_cpus applies to a local Ray only; a cluster declares its own CPUs")


@dataclass
class BudgetConfig:
    """When practice stops (whichever comes first; all 0: only Ctrl-C stops it).

    Counts are totals of the session directory, so a resumed session continues to them.
    """

    episodes: int = 0  # practice episodes (all robots)
    robot_hours: float = 0.0  # robot time of practice episodes (simulated time for sims)
    updates: int = 0  # learner updates

    def __post_init__(self) -> None:
        if self.episodes < 0 or self.robot_hours < 0 or self.updates < 0:
            raise ValueError("budget: episodes, robot_hours and updates must be >= 0 (0: no limit)")


def _default_actor() -> ActorConfig:
    # Simulated robots with simulated operators, faster than real time. policy, store, task,
    # robot_id, session_id and seed are filled in per robot by the session.
    return ActorConfig(
        policy="runs/pretrain/policy",
        sim_operator=True,
        control=ControlConfig(realtime=False, execute=4, lead_steps=2),
    )


@dataclass
class PracticeConfig:
    """Settings of `rlpost practice`."""

    out: str = "runs/practice"  # the session directory
    policy_checkpoint: str = "runs/pretrain/policy"  # the VLA to start from (`policy=` on the CLI)
    demos: str = ""  # an episode store of demonstrations, imported into the session store once
    reward_model: str = ""  # reward model checkpoint (rm-v<N>); needed when learner.mode uses labels
    task: str = "tabletop"
    robots: int = 2
    robot_ids: list[str] = field(default_factory=list)  # names; empty: sim-0 .. sim-<robots-1>
    endpoints: list[str] = field(default_factory=list)  # actor.robot=zmq: one robot-server per robot
    actor: ActorConfig = field(default_factory=_default_actor)  # template for every robot
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    learn: bool = True  # False: robots practise and record, nothing is trained (warm-up, data collection)
    learn_after: int = 4  # practice episodes in the store before the first update
    updates_per_cycle: int = 10  # learner updates between looks at the robots
    # At most this many learner updates per finished practice episode (0: as fast as it can).
    # On a small machine an unthrottled learner in the driver takes the robots' CPU.
    max_updates_per_episode: float = 0.0
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    resume: bool = False  # continue the session in `out`
    status_every_s: float = 10.0  # the status table (0: never)
    status_window: int = 20  # success and takeovers over each robot's last N episodes
    stop_timeout_s: float = 120.0  # on shutdown, wait this long for robots to finish their episode
    seed: int = 0
    threads: int = 1  # torch threads of the learner (in the driver or its actor)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)  # the operators' web page

    def __post_init__(self) -> None:
        if self.robot_ids:
            if self.robots not in (0, len(self.robot_ids)):
                raise ValueError(f"robots={self.robots} but robot_ids names {len(self.robot_ids)} robots")
            if len(set(self.robot_ids)) != len(self.robot_ids):
                raise ValueError(f"robot_ids {self.robot_ids} names a robot twice")
            self.robots = len(self.robot_ids)
        if self.robots < 1:
            raise ValueError(f"robots={self.robots} must be >= 1")
        if self.actor.robot == "zmq" and len(self.endpoints) != self.robots:
            raise ValueError(
                f"actor.robot=zmq needs one robot-server endpoint per robot: {self.robots} robots, "
                f"{len(self.endpoints)} endpoints"
            )
        if self.actor.robot == "zmq" and self.ray.robots_per_actor > 1:
            raise ValueError("ray.robots_per_actor > 1 is for simulated robots only")
        if self.updates_per_cycle < 1 or self.learn_after < 0 or self.status_window < 1:
            raise ValueError("updates_per_cycle and status_window must be >= 1, learn_after >= 0")
        if self.max_updates_per_episode < 0:
            raise ValueError(
                f"max_updates_per_episode={self.max_updates_per_episode} must be >= 0 (0: no cap)"
            )
        if self.budget.updates and not self.learn:
            raise ValueError("budget.updates with learn=false would never be reached")

    def check_learning(self) -> None:
        """Raises ValueError when learning needs reward labels and no reward model is given.

        (Checked when the session starts, not in ``__post_init__``: `rlpost demo` trains the
        reward model after composing this config.)
        """
        if self.learn and self.learner.needs_labels and not self.reward_model:
            raise ValueError(
                f"learner.mode={self.learner.mode} ranks samples by advantage and needs reward labels: "
                "set reward_model=<dir of rm-v<N>> (rlpost train-reward), or learner.mode=curated/bc_all"
            )

    def robot_names(self) -> list[str]:
        return list(self.robot_ids) or [f"sim-{i}" for i in range(self.robots)]
