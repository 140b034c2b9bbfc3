"""Config schemas of the reward model, its training, the labeler and `rlpost reward-eval`.

Plain dataclasses (registered with Hydra by ``rlpost.config``); contradictions fail in
``__post_init__`` with a sentence a user understands. The reward definition follows
REWARD.md ("Reward and returns").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlpost.metrics import LoggerConfig
from rlpost.names import unknown_name_error

REWARD_KINDS: tuple[str, ...] = ("steps_to_go", "progress_delta")


@dataclass
class RewardDef:
    """How per-step rewards (and the value target) are defined; REWARD.md "Reward and returns".

    ``steps_to_go`` (default, RECAP-style, pi*0.6 arXiv 2511.14759): r = -1 per step, 0 at the
    success step, -C_fail at a failure or timeout terminal; everything divided by
    (T_max + C_fail) so returns lie in [-1, 0], successes in [-0.5, 0], failures below.

    ``progress_delta``: potential-based shaping (Ng et al. 1999) with the predicted progress
    as the potential, zero potential at the terminal step, plus ``success_bonus`` at the
    success step and ``-failure_penalty`` at a failure/timeout terminal. The shaping
    telescopes to -progress(o_0), so a failure that ends at high predicted progress is not paid.
    """

    kind: str = "steps_to_go"  # one of REWARD_KINDS
    t_max: int = 0  # T_max, the episode step limit; 0: the longest episode the model was trained on
    c_fail: float = 0.0  # C_fail; 0: equal to T_max (REWARD.md)
    gamma: float = 1.0  # discount of the shaping term (progress_delta)
    success_bonus: float = 1.0  # progress_delta: reward at the success step
    failure_penalty: float = 1.0  # progress_delta: magnitude of the reward at a failure terminal
    aborted_is_failure: bool = True  # an operator-aborted episode ends like a failure (a
    # disconnected one, extra["recovered"] == "true", is never treated as a failure: it is masked)

    def __post_init__(self) -> None:
        if self.kind not in REWARD_KINDS:
            raise unknown_name_error("reward.kind", self.kind, REWARD_KINDS)
        if self.t_max < 0 or self.c_fail < 0:
            raise ValueError(f"reward: t_max={self.t_max} and c_fail={self.c_fail} must be >= 0 (0: default)")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"reward: gamma={self.gamma} must be in (0, 1]")
        if self.success_bonus < 0 or self.failure_penalty < 0:
            raise ValueError(
                f"reward: success_bonus={self.success_bonus} and failure_penalty={self.failure_penalty} "
                "are magnitudes and must be >= 0"
            )

    def resolved(self, t_max: int) -> tuple[int, float]:
        """(T_max, C_fail) with defaults filled from the data's ``t_max``."""
        tm = self.t_max or t_max
        if tm < 1:
            raise ValueError(f"reward: T_max={tm} must be >= 1; set reward.t_max to the episode step limit")
        return tm, self.c_fail or float(tm)


@dataclass
class RewardModelConfig:
    """Shape of the reward model; see reward_models/model.py for the architecture."""

    width: int = 128  # d of the temporal model
    pool_tokens: int = 4  # learned queries attention-pooling the backbone prefix per frame
    heads: int = 4
    depth: int = 2  # causal transformer layers over [first frame, window]
    window: int = 8  # K frames of recent history (the current frame is the last)
    stride: int = 3  # steps between window frames (~0.3 s at the sims' 10 Hz)
    bins: int = 51  # categorical bins of the progress and value heads
    hl_sigma: float = 0.75  # HL-Gauss smoothing, in bin widths (arXiv 2403.03950 recommends ~0.75)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"reward model: width={self.width} must be divisible by heads={self.heads}")
        if self.window < 1 or self.stride < 1 or self.pool_tokens < 1 or self.depth < 1:
            raise ValueError(
                f"reward model: window={self.window}, stride={self.stride}, pool_tokens={self.pool_tokens}, "
                f"depth={self.depth} must all be >= 1"
            )
        if self.bins < 3:
            raise ValueError(f"reward model: bins={self.bins} must be >= 3")
        if self.hl_sigma <= 0:
            raise ValueError(f"reward model: hl_sigma={self.hl_sigma} must be > 0")


@dataclass
class RewardTrainConfig:
    """Settings of `rlpost train-reward`."""

    store: str = "runs/demos"  # episode store with demos, practice, failures
    policy_checkpoint: str = (
        "runs/pretrain/policy"  # VLA whose frozen backbone gives the features (`policy=` on the CLI)
    )
    out: str = "runs/reward"  # run directory; checkpoints go to <out>/rm-v<N>/
    task: str = ""  # only episodes of this task ("" = all)
    model: RewardModelConfig = field(default_factory=RewardModelConfig)
    reward: RewardDef = field(default_factory=RewardDef)
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 1.0
    val_fraction: float = 0.2  # of episodes, held out for calibration, the threshold and val metrics
    val_every: int = 250
    # Loss weights (see train.py for why each is there).
    w_progress: float = 1.0
    w_success: float = 1.0
    w_value: float = 1.0
    w_rank: float = 0.5  # success-vs-failure preference on final progress (ReWiND/Robometer)
    rewind_fraction: float = 0.25  # share of progress samples that are rewound clips (synthetic)
    mismatch_fraction: float = 0.3  # share of success episodes also encoded with a wrong instruction
    success_window: int = 1  # frames at the end of a success episode labelled "success now"
    max_fpr: float = 0.02  # the success threshold keeps the held-out false-positive rate at or below this
    cache_dir: str = ""  # feature spill directory; "" = <out>/features
    cache_dtype: str = "float16"
    seed: int = 0
    threads: int = 0
    progress: bool = True
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError(f"train-reward: steps={self.steps} >= 1 and batch_size={self.batch_size} >= 2")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(
                f"train-reward: val_fraction={self.val_fraction} must be in (0, 1); the success head "
                "is calibrated on held-out episodes"
            )
        for name in ("rewind_fraction", "mismatch_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"train-reward: {name}={getattr(self, name)} must be in [0, 1)")
        if not 0.0 < self.max_fpr < 1.0:
            raise ValueError(f"train-reward: max_fpr={self.max_fpr} must be in (0, 1)")
        if self.success_window < 1:
            raise ValueError(f"train-reward: success_window={self.success_window} must be >= 1")


@dataclass
class LabelConfig:
    """Settings of `rlpost label`."""

    store: str = "runs/practice"
    reward_model: str = "runs/reward/rm-v1"  # checkpoint directory of the reward model
    policy_checkpoint: str = "runs/pretrain/policy"  # the VLA whose frozen backbone the model was trained on
    reward: RewardDef | None = None  # None: the definition saved with the reward model
    task: str = ""
    episodes: list[str] = field(default_factory=list)  # ids; empty = every finished episode
    overwrite: bool = False  # rewrite this model version's labels (raw data is never touched)
    cache_dir: str = ""  # "" = in memory only
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    progress: bool = True


@dataclass
class RewardEvalConfig:
    """Settings of `rlpost reward-eval`."""

    store: str = "runs/eval_store"
    reward_model: str = "runs/reward/rm-v1"
    policy_checkpoint: str = "runs/pretrain/policy"  # the VLA the reward model was trained on
    task: str = ""
    include_trained: bool = False  # also score episodes the model was trained or calibrated on
    shuffle_seed: int = 0  # frame order of the shuffled-VOC control
    bootstrap: int = 200  # episode-level bootstrap resamples for the 95% intervals (0: none)
    out: str = ""  # write the JSON result here when set
    cache_dir: str = ""
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    progress: bool = True
