"""Config schemas of the VLA policy (registered with Hydra by rlpost.config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlpost.names import unknown_name_error
from rlpost.schema import check_noise_scale

BACKBONES = ("tiny", "hf")
HF_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class TinyBackboneConfig:
    """Our own small vision-language backbone: conv stem + spatial-softmax keypoints + ViT layers,
    a byte tokenizer with a small text transformer, and joint fusion layers."""

    image_size: int = 64  # every camera image is resized to image_size x image_size
    width: int = 128  # D of the prefix tokens
    heads: int = 4
    vision_depth: int = 2  # transformer layers over each camera's patch + keypoint tokens
    text_depth: int = 1
    fusion_depth: int = 2  # joint layers over image and text tokens (where language meets vision)
    grid: int = 8  # patch tokens per camera = grid * grid (pooled from the conv feature map)
    keypoints: int = (
        16  # spatial-softmax keypoints per camera (EXPERIMENTS.md: what made a tiny encoder localise)
    )
    max_text_len: int = 64  # bytes; a longer instruction is an error, never silently cut
    dropout: float = 0.0
    # FiLM the conv feature map with the instruction before the keypoints are read out, so the
    # keypoints can follow the object the instruction names (as RT-1 conditions its encoder).
    film: bool = False

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"tiny backbone: width={self.width} must be divisible by heads={self.heads}")
        if self.image_size % 4 or (self.image_size // 4) % self.grid:
            raise ValueError(
                f"tiny backbone: image_size={self.image_size} must be a multiple of 4 whose quarter "
                f"({self.image_size // 4}) is a multiple of grid={self.grid}"
            )


@dataclass
class HFBackboneConfig:
    """A transformers vision-language model (PaliGemma, SmolVLM/Idefics3, ...)."""

    model: str = ""  # local directory or hub id; loaded with from_pretrained
    max_text_len: int = 32  # tokens; a longer instruction is an error
    image_size: int = 0  # 0: the model's own vision config size
    dtype: str = "float32"  # float32 | bfloat16 | float16 (OmegaConf cannot type a Literal)

    def __post_init__(self) -> None:
        if self.dtype not in HF_DTYPES:
            raise unknown_name_error("policy.hf.dtype", self.dtype, HF_DTYPES)


@dataclass
class ExpertConfig:
    """The flow-matching action expert: a transformer over [state, H action tokens]."""

    width: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    # Advantage-indicator input (learner's adv_conditioned mode): an embedding of
    # {negative, positive, dropped}; dropped is also used for classifier-free guidance.
    use_cond: bool = False

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"action expert: width={self.width} must be divisible by heads={self.heads}")


@dataclass
class PolicyConfig:
    """The whole VLA: which backbone, the expert, and the flow-matching settings."""

    backbone: str = "tiny"  # one of BACKBONES
    tiny: TinyBackboneConfig = field(default_factory=TinyBackboneConfig)
    hf: HFBackboneConfig = field(default_factory=HFBackboneConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    cameras: list[str] = field(default_factory=lambda: ["top"])
    state_dim: int = 0  # S; 0: taken from the robot/dataset when the policy is built
    action_dim: int = 0  # A; likewise
    # Indices of the state dims the policy sees ([] = all S). Leaving out velocities avoids the
    # copycat failure of imitation: with the last commanded velocity in its input, a policy can
    # fit demos by repeating it and then never starts or turns by itself.
    state_keep: list[int] = field(default_factory=list)
    horizon: int = 50  # H, actions per chunk
    num_steps: int = 10  # Euler integration steps at sampling
    # pi0's time schedule: tau = (1 - s) * Beta(a, b) + s, weighting noisier times (tau -> 1 is noise).
    time_beta_a: float = 1.5
    time_beta_b: float = 1.0
    time_min: float = 0.001
    # Acting with an advantage-conditioned expert (use_cond): the positive indicator, with this
    # classifier-free guidance weight (1 = plain conditioning).
    act_guidance: float = 1.0
    # Exploration while practising: the initial noise is act_noise_scale * N(0, I) (+ the steering
    # mean). A robot's setting (actor.noise_scale), recorded with each episode; not shipped with heads.
    act_noise_scale: float = 1.0
    # > 0: a noise-space steering net (rlpost.policy.steering) picks the mean of the initial noise,
    # bounded by this; it ships with the head. 0: plain standard-normal noise.
    steer_bound: float = 0.0

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise unknown_name_error("policy.backbone", self.backbone, BACKBONES)
        if self.backbone == "hf" and not self.hf.model:
            raise ValueError("policy.backbone=hf needs policy.hf.model (a local directory or hub id)")
        if self.horizon < 1 or self.num_steps < 1:
            raise ValueError(f"policy: horizon={self.horizon} and num_steps={self.num_steps} must be >= 1")
        if not self.cameras:
            raise ValueError("policy.cameras is empty; a VLA needs at least one camera")
        check_noise_scale(self.act_noise_scale, "policy.act_noise_scale")
        if not 0.0 <= self.steer_bound <= 5.0:
            raise ValueError(
                f"policy.steer_bound={self.steer_bound} must be in [0, 5] (standard-normal units)"
            )
        if self.state_dim < 0 or self.action_dim < 0:
            raise ValueError(f"policy: state_dim={self.state_dim}, action_dim={self.action_dim} must be >= 0")
        bad = [i for i in self.state_keep if not 0 <= i < max(self.state_dim, 1)] if self.state_dim else []
        if bad or len(set(self.state_keep)) != len(self.state_keep):
            raise ValueError(
                f"policy.state_keep={list(self.state_keep)} must be distinct indices into the {self.state_dim} state dims "
                "(policy.state_keep=[] keeps them all)"
            )

    @property
    def policy_state_dim(self) -> int:
        """How many state dims reach the expert."""
        return len(self.state_keep) if self.state_keep else self.state_dim
