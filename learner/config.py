"""Config schema of the central learner (registered with Hydra by rlpost.config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from learner.advantages import ADVANTAGE_KINDS
from rlpost.names import unknown_name_error

MODES = ("awfm", "adv_conditioned", "curated", "bc_all", "takeovers", "steer", "steer_distill", "fpo")
HUMAN_CREDIT = ("positive", "valued")
VALUES = ("labels", "refit")
STEER_TARGETS = ("executed", "chunk")


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
    """The learner: which update rule, its hyper-parameters, and how often it ships the head."""

    # awfm | adv_conditioned | curated | bc_all | takeovers (awfm without the advantage term: a
    # person's steps get w_max, every other step weight 1; the ablation that isolates the human share)
    # fpo: flow policy optimisation (PPO with the ratio exp(L_old - L_new) of flow-matching losses
    # on shared draws; head only; the old head is the last published one).
    # steer: the expert stays fixed; a noise-space steering net (shipped with the head) learns
    # by advantage-weighted regression onto the noise that produced each recorded chunk.
    # steer_distill: steer, then distil the steered policy into the expert before each publish
    # (the shipped head acts with plain noise: the improvement lives in the expert's weights).
    mode: str = "awfm"
    advantage: str = "nstep"  # nstep | mc | gae | progress_delta
    execute: int = 4  # k: actions executed per chunk (the n of the n-step advantage)
    # where the advantages' V comes from. labels: the reward model's value (trained once, on
    # warm-up episodes); refit: a value net on the cached features, refit to the returns of this
    # run's own practice episodes whenever new ones arrive (learner/critic.py says why)
    value: str = "labels"
    critic_updates: int = 500  # value=refit: updates of each fit (a fresh net each time; more overfit)
    gae_lambda: float = 0.9
    beta: float = 1.0  # AWR temperature on standardised advantages
    w_max: float = 20.0  # weight clip
    positive_fraction: float = 0.3  # adv_conditioned: top fraction (per task) marked positive
    cond_dropout: float = (
        0.3  # adv_conditioned: indicator dropped (for classifier-free guidance; ~30% as in RECAP)
    )
    guidance: float = 1.0  # adv_conditioned: guidance weight when acting (1 = no guidance)
    fpo_clip: float = 0.2  # fpo: PPO clip of the likelihood-ratio surrogate
    fpo_samples: int = 4  # fpo: (tau, noise) draws per sample for the flow-loss ratio estimate
    steer_bound: float = 1.0  # steer: largest |noise mean| the steering net may pick (standard-normal units)
    # steer: which of a replay chunk's positions the steering net regresses onto their inverted
    # noise. chunk: all H; executed: the first `execute` (the actions the robot ran from the chunk
    # that started there; the later ones came from the next chunk, and their inverted noise is
    # further from the noise the head used than a fresh draw). executed measured worse on the route
    # task without takeovers (all rounds -0.046 [-0.072, -0.018] vs chunk, README), so chunk stays
    steer_target: str = "chunk"
    # steer_distill: share of each publish period's updates that distil (the rest train the steering net)
    distill_fraction: float = 0.5
    human_credit: str = (
        "positive"  # positive: a person's actions get the top weight (RECAP); valued: like any
    )
    curated_fastest: float = 1.0  # curated: keep this fastest fraction of successes per task
    batch_size: int = 64
    lr: float = 1e-4
    # Linear warm-up of the head's learning rate over the first updates: the pretrained head
    # ends a cosine schedule near lr 0, and a fresh AdamW at full lr moves every weight by ~lr
    # on its first steps whatever the gradient's size.
    warmup_updates: int = 0
    weight_decay: float = 1e-4
    # > 0: what ships (acts, is evaluated, published, checkpointed) is an exponential moving
    # average of the head's weights over ~1/(1 - ema_decay) updates (learner/ema.py says why;
    # on the route task with takeovers it raised the final success of awfm by +0.08 and of the
    # takeovers alone by +0.12 over 5 paired seeds, README); 0: the optimizer's latest weights ship
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    publish_every: int = 100  # updates between published head versions (also checkpoints)
    cache_memory_mb: float = 2048.0
    replay: ReplayConfig = field(default_factory=ReplayConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise unknown_name_error("learner.mode", self.mode, MODES)
        if self.advantage not in ADVANTAGE_KINDS:
            raise unknown_name_error("learner.advantage", self.advantage, ADVANTAGE_KINDS)
        if self.value not in VALUES:
            raise unknown_name_error("learner.value", self.value, VALUES)
        if self.value == "refit" and self.advantage == "progress_delta":
            raise ValueError("learner.value=refit needs an advantage that uses a value (nstep, mc or gae)")
        if self.steer_target not in STEER_TARGETS:
            raise unknown_name_error("learner.steer_target", self.steer_target, STEER_TARGETS)
        if self.critic_updates < 1:
            raise ValueError(f"learner.critic_updates={self.critic_updates} must be >= 1")
        if self.human_credit not in HUMAN_CREDIT:
            raise unknown_name_error("learner.human_credit", self.human_credit, HUMAN_CREDIT)
        if self.beta <= 0 or self.w_max < 1:
            raise ValueError(f"learner: beta={self.beta} must be > 0 and w_max={self.w_max} >= 1")
        if not 0 < self.positive_fraction < 1:
            raise ValueError(f"learner.positive_fraction={self.positive_fraction} must be in (0, 1)")
        if not 0 < self.curated_fastest <= 1:
            raise ValueError(f"learner.curated_fastest={self.curated_fastest} must be in (0, 1]")
        if not 0 < self.fpo_clip < 1 or self.fpo_samples < 1:
            raise ValueError(
                f"learner: fpo_clip={self.fpo_clip} must be in (0, 1), fpo_samples={self.fpo_samples} >= 1"
            )
        if not 0 < self.distill_fraction < 1:
            raise ValueError(f"learner.distill_fraction={self.distill_fraction} must be in (0, 1)")
        if self.mode == "steer_distill" and self.publish_every < 2:
            raise ValueError(
                "learner mode steer_distill needs publish_every >= 2 (steer, then distil, per period)"
            )
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

    def distill_updates(self) -> int:
        """steer_distill: the number of distillation updates that end each publish period (>= 1)."""
        return max(1, min(self.publish_every - 1, round(self.publish_every * self.distill_fraction)))

    @property
    def needs_labels(self) -> bool:
        """Modes that rank samples by advantage need reward labels."""
        return self.mode in ("awfm", "adv_conditioned", "steer", "steer_distill", "fpo")
