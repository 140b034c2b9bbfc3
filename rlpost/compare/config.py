"""Config schema of `rlpost compare` (registered with Hydra by rlpost.cli)."""

from __future__ import annotations

from dataclasses import dataclass, field

from learner.chunk_critic import ChunkCriticConfig
from learner.config import RENAMED, LearnerConfig
from learner.edit_actor import EditConfig
from learner.noise_actor import NoiseConfig
from learner.rules import RULES
from rlpost.metrics import LoggerConfig
from rlpost.names import unknown_name_error
from rlpost.schema import check_noise_scale
from rlpost.sim.config import BUILTIN_TASKS, SimConfig, SimOperatorConfig

# Every method starts from the same pretrained checkpoint and spends the same robot time.
METHODS: tuple[str, ...] = (
    "pretrained",  # untouched: the floor
    "demo_only",  # continued imitation on the demonstrations, same updates: the control to beat
    "curated",  # imitation on successful practice episodes (fastest fraction) + takeover segments
    "bc_all",  # imitation on all practice data
    "takeovers_only",  # a person's steps up-weighted, no advantages: what the human contributes
    "awfm",  # advantage-weighted flow matching of the head
    "adv_conditioned",  # advantage-indicator input + classifier-free guidance (RECAP)
    "steer",  # noise-space steering net, expert untouched (DSRL)
    "steer_distill",  # steer, then distil the steered policy into the expert each round
    "fpo",  # flow policy optimisation: clipped likelihood-ratio policy gradient on the head
    "best_of_8",  # head untouched; act best-of-8 by a chunk critic refit on all data every round
    "best_of_8_distill",  # practise best-of-8, distil its successes into the head (curated); evaluate the head alone
    "edit",  # head untouched; an edit actor, trained against the refit critic, corrects each chunk
    "noise",  # head untouched; a noise actor picks the flow's initial noise against the refit critic (DSRL)
)
# best_of_<N> and best_of_<N>_distill for any N >= 1 are methods too (METHODS lists the default N)
BEST_OF_PREFIX, DISTILL_SUFFIX = "best_of_", "_distill"
DISTILL_MODE = "curated"  # how a distilling best-of-N method trains its head


def best_of(method: str) -> int | None:
    """N of a best-of-N method (``best_of_16`` and ``best_of_16_distill`` -> 16); None for the others."""
    tail = method.removeprefix(BEST_OF_PREFIX).removesuffix(DISTILL_SUFFIX)
    return int(tail) if method.startswith(BEST_OF_PREFIX) and tail.isdigit() and int(tail) >= 1 else None


def distills(method: str) -> bool:
    """A best-of-N method that distils what it practised into the head (and is evaluated head alone)."""
    return best_of(method) is not None and method.endswith(DISTILL_SUFFIX)


def method_mode(method: str) -> str | None:
    """The learner mode a method trains with; None for methods that train no head."""
    return DISTILL_MODE if distills(method) else METHOD_MODES.get(method)


# learner.mode (and replay overrides) per learning method
METHOD_MODES: dict[str, str] = {
    "demo_only": "bc_all",
    "curated": "curated",
    "bc_all": "bc_all",
    "takeovers_only": "takeovers",
    "awfm": "awfm",
    "adv_conditioned": "adv_conditioned",
    "steer": "steer",
    "steer_distill": "steer_distill",
    "fpo": "fpo",
}
# learner settings only some methods read, by group: "learner.<group>" -> the methods whose rule
# reads it (a difference there counts only where such a method ran)
OPTION_METHODS: dict[str, tuple[str, ...]] = {
    f"learner.{group}": tuple(m for m, mode in METHOD_MODES.items() if group in RULES[mode].uses)
    for group in sorted({g for rule in RULES.values() for g in rule.uses})
}
# learner settings recorded under an older name: "learner.<old>" -> "learner.<group>.<name>"
RENAMED_OPTIONS: dict[str, str] = {f"learner.{old}": f"learner.{new}" for old, new in RENAMED.items()}
# every method's paired difference against these (where the table has them): continued imitation,
# curated imitation, and, with operators, the takeovers alone without advantages
CONTROLS: tuple[str, ...] = ("demo_only", "curated", "takeovers_only")
# the controls a learning method must beat (the two goals); successes per hour and the
# all-rounds line are paired against these only
PRIMARY_CONTROLS: tuple[str, ...] = ("demo_only", "takeovers_only")


@dataclass
class CompareConfig:
    """Settings of `rlpost compare`."""

    out: str = "runs/compare"
    policy_checkpoint: str = "runs/demo/pretrain/policy"  # the one pretrained VLA (`policy=` on the CLI)
    demos: str = "runs/demo/demos"  # the demonstrations it was pretrained on
    reward_model: str = ""  # reward-model checkpoint; needed by awfm and adv_conditioned
    tasks: list[str] = field(default_factory=lambda: ["tabletop"])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    seeds: int = 3  # training seeds per method (paired: the same env seeds across methods)
    takeovers: list[bool] = field(default_factory=lambda: [True, False])  # with and without operators
    rounds: int = 3  # practice -> label -> update -> evaluate, this many times
    episodes_per_round: int = 24  # practice episodes per round (the robot-time budget)
    updates_per_round: int = 150  # head updates per round (every learning method, demo_only too)
    eval_episodes: int = 64  # per evaluation (the same env seeds for every method and round)
    eval_seed: int = 500_000
    practice_seed: int = 1_000_000
    num_envs: int = 16  # simulated robots stepped in lockstep
    execute: int = 4  # actions executed per chunk
    # exploration: practice (every method's) samples the initial noise at this scale; evaluation at 1
    practice_noise_scale: float = 1.0
    sim: SimConfig = field(default_factory=SimConfig)
    operator: SimOperatorConfig = field(default_factory=lambda: SimOperatorConfig(triggers=("stall",)))
    learner: LearnerConfig = field(default_factory=LearnerConfig)  # shared settings; mode set per method
    bootstrap: int = 2000  # resamples for the paired intervals
    # best-of-N methods: the chunk critic (critic.chunk must equal execute) and the pessimism
    # they rank candidates with (mean - critic_risk * std of the ensemble)
    critic: ChunkCriticConfig = field(default_factory=lambda: ChunkCriticConfig(updates=1500, stride=4))
    critic_risk: float = 1.0
    edit: EditConfig = field(default_factory=EditConfig)  # the edit method's actor
    noise: NoiseConfig = field(default_factory=NoiseConfig)  # the noise method's actor
    threads: int = 0
    progress: bool = True
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        for m in self.methods:
            if m not in METHODS and best_of(m) is None:
                raise unknown_name_error("compare.methods", m, METHODS)
        if (
            any(best_of(m) or m in ("edit", "noise") for m in self.methods)
            and self.critic.chunk != self.execute
        ):
            raise ValueError(
                f"compare: critic.chunk={self.critic.chunk} must equal execute={self.execute} (the critic "
                "scores the actions a robot executes from each chunk)"
            )
        if self.critic_risk < 0:
            raise ValueError(f"compare.critic_risk={self.critic_risk} must be >= 0")
        if len(set(self.methods)) != len(self.methods) or not self.methods:
            raise ValueError(f"compare.methods={list(self.methods)} must list each method once")
        for t in self.tasks:
            if t not in BUILTIN_TASKS:
                raise unknown_name_error("compare.tasks", t, BUILTIN_TASKS)
        if not self.tasks or not self.takeovers:
            raise ValueError("compare: tasks and takeovers must not be empty")
        for name in (
            "seeds",
            "rounds",
            "episodes_per_round",
            "updates_per_round",
            "eval_episodes",
            "num_envs",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"compare.{name}={getattr(self, name)} must be >= 1")
        check_noise_scale(self.practice_noise_scale, "compare.practice_noise_scale")
        needs_rm = [
            m for m in self.methods if m in ("awfm", "adv_conditioned", "steer", "steer_distill", "fpo")
        ]
        if needs_rm and not self.reward_model:
            raise ValueError(
                f"compare: methods {needs_rm} rank steps by advantage and need reward_model=<checkpoint>"
                " (train one with `rlpost train-reward`, or drop them from compare.methods)"
            )
