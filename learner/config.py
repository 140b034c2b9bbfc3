"""Config schema of the central learner (registered with Hydra by rlpost.config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from learner.advantages import ADVANTAGE_KINDS
from learner.rules import RULES, rule_class
from learner.rules.adv_conditioned import AdvConditionedConfig
from learner.rules.fpo import FPOConfig
from learner.rules.imitation import CuratedConfig
from learner.rules.steer import SteerConfig
from learner.rules.steer_distill import SteerDistillConfig
from rlpost.names import unknown_name_error

MODES = tuple(RULES)
HUMAN_CREDIT = ("positive", "valued")
VALUES = ("labels", "refit")


@dataclass
class ReplayConfig:
    """What the learner samples from the episode store."""

    demo_fraction: float = 0.3  # of each batch from demonstrations; the rest from practice
    recent_episodes: int = 0  # practice: only the latest N episodes (0: all)
    label_version: str = ""  # reward labels to use ("" = the newest version of each episode)
    # practice episodes of these session ids only (empty: all); demonstrations always count.
    # Lets several runs share one store (the comparison harness: one session per method and seed).
    sessions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 <= self.demo_fraction <= 1.0:
            raise ValueError(f"learner.replay.demo_fraction={self.demo_fraction} must be in [0, 1]")
        if self.recent_episodes < 0:
            raise ValueError(f"learner.replay.recent_episodes={self.recent_episodes} must be >= 0")


@dataclass
class LearnerConfig:
    """The learner: which update rule, its hyper-parameters, and how often it ships the head.

    Settings every advantage-based rule shares are fields here; a rule's own settings are its
    config dataclass under ``learner.<rule>`` (learner/rules/<rule>.py).
    """

    mode: str = "awfm"  # the update rule (learner/rules/__init__.py lists them)
    advantage: str = "nstep"  # nstep | mc | gae | progress_delta
    execute: int = 4  # k: actions executed per chunk (the n of the n-step advantage)
    # where the advantages' V comes from. labels: the reward model's value (trained once, on
    # warm-up episodes); refit: a value net on the cached features, refit to the returns of this
    # run's own practice episodes whenever new ones arrive (learner/critic.py says why)
    value: str = "labels"
    critic_updates: int = 500  # value=refit: updates of each fit (a fresh net each time; more overfit)
    gae_lambda: float = 0.9
    beta: float = 1.0  # AWR temperature on standardised advantages (awfm, takeovers, steer)
    w_max: float = 20.0  # weight clip
    # positive: a person's actions get the top weight / the positive indicator (RECAP); valued:
    # they are weighted by their advantage like any other step
    human_credit: str = "positive"
    batch_size: int = 64
    lr: float = 1e-4
    # Linear warm-up of the head's learning rate over the first updates: the pretrained head
    # ends a cosine schedule near lr 0, and a fresh AdamW at full lr moves every weight by ~lr
    # on its first steps whatever the gradient's size.
    warmup_updates: int = 0
    weight_decay: float = 1e-4
    # > 0: what ships (acts, is evaluated, published, checkpointed) is an exponential moving
    # average of the head's weights over ~1/(1 - ema_decay) updates (learner/ema.py says why);
    # 0: the optimizer's latest weights ship
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    publish_every: int = 100  # updates between published head versions (also checkpoints)
    cache_memory_mb: float = 2048.0
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    # the rules' own settings
    adv_conditioned: AdvConditionedConfig = field(default_factory=AdvConditionedConfig)
    curated: CuratedConfig = field(default_factory=CuratedConfig)
    fpo: FPOConfig = field(default_factory=FPOConfig)
    steer: SteerConfig = field(default_factory=SteerConfig)
    steer_distill: SteerDistillConfig = field(default_factory=SteerDistillConfig)

    def __post_init__(self) -> None:
        rule_class(self.mode).check(self)  # an unknown mode suggests the nearest one
        if self.advantage not in ADVANTAGE_KINDS:
            raise unknown_name_error("learner.advantage", self.advantage, ADVANTAGE_KINDS)
        if self.value not in VALUES:
            raise unknown_name_error("learner.value", self.value, VALUES)
        if self.value == "refit" and self.advantage == "progress_delta":
            raise ValueError("learner.value=refit needs an advantage that uses a value (nstep, mc or gae)")
        if self.critic_updates < 1:
            raise ValueError(f"learner.critic_updates={self.critic_updates} must be >= 1")
        if self.human_credit not in HUMAN_CREDIT:
            raise unknown_name_error("learner.human_credit", self.human_credit, HUMAN_CREDIT)
        if self.beta <= 0 or self.w_max < 1:
            raise ValueError(f"learner: beta={self.beta} must be > 0 and w_max={self.w_max} >= 1")
        if self.lr <= 0 or self.warmup_updates < 0:
            raise ValueError(
                f"learner: lr={self.lr} must be > 0 and warmup_updates={self.warmup_updates} >= 0"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"learner.ema_decay={self.ema_decay} must be in [0, 1) (0: no average)")
        if self.execute < 1 or self.batch_size < 1 or self.publish_every < 1:
            raise ValueError("learner: execute, batch_size and publish_every must be >= 1")

    def lr_at(self, step: int) -> float:
        """The learning rate of update ``step`` (0-based): linear warm-up, then constant."""
        if step < self.warmup_updates:
            return self.lr * (step + 1) / self.warmup_updates
        return self.lr

    @property
    def needs_labels(self) -> bool:
        """Whether the rule ranks samples by advantage (and so needs reward labels)."""
        return rule_class(self.mode).needs_labels


# Settings that moved from the learner's top level into a rule's group: old name -> new dotted
# name under learner. Comparisons recorded with the old names still merge (rlpost.compare.report).
RENAMED: dict[str, str] = {
    "positive_fraction": "adv_conditioned.positive_fraction",
    "cond_dropout": "adv_conditioned.cond_dropout",
    "guidance": "adv_conditioned.guidance",
    "curated_fastest": "curated.fastest",
    "fpo_clip": "fpo.clip",
    "fpo_samples": "fpo.samples",
    "steer_bound": "steer.bound",
    "steer_target": "steer.target",
    "distill_fraction": "steer_distill.fraction",
}
