"""The reward model: heads on the frozen backbone's cached prefixes plus a small causal temporal model.

Per frame (REWARD.md "Recommended model"): the prefix tokens [P, D] (image and language
tokens, fused by the backbone) are attention-pooled by Q learned queries to Q tokens and
projected to one embedding; the state goes through a small MLP and is added. A causal
transformer runs over [first frame, K window frames strided back from now] with
position embeddings *within the window only*; there is no time index or frame number
anywhere, so the model cannot learn the clock. Read out at the current frame:

- progress: categorical over [0, 1] (HL-Gauss, arXiv 2403.03950), read out as the expectation;
- success now: one logit (Platt-calibrated after training, see train.py);
- value: categorical over the normalised return [-1, 0] (REWARD.md); its mass above -0.5
  is the chance of success, its expectation the value.

The pooling is linear attention in the token features: a score vector per query and
head, then the value projection after pooling. It is exactly multi-head attention
pooling with learned queries (keys' bias cancels in the softmax), at a fraction of
the cost, since no per-token projection of [B, K+1, P, D] is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from reward_models.config import RewardModelConfig

VALUE_LO, VALUE_HI = -1.0, 0.0
SUCCESS_RETURN = -0.5  # normalised returns above this are successes (REWARD.md)


def hl_gauss_targets(y: Tensor, lo: float, hi: float, bins: int, sigma_bins: float) -> Tensor:
    """HL-Gauss soft targets (Farebrother et al. 2024, arXiv 2403.03950, sec. 3.1).

    Bin i gets the mass of N(y, sigma^2) between its edges, renormalised over [lo, hi];
    sigma = sigma_bins * bin width.

    Args:
        y: float [N] in [lo, hi] (clipped).

    Returns:
        float32 [N, bins], rows summing to 1.
    """
    edges = torch.linspace(lo, hi, bins + 1, device=y.device, dtype=torch.float64)
    sigma = sigma_bins * (hi - lo) / bins
    yc = y.to(torch.float64).clamp(lo, hi)[:, None]
    cdf = 0.5 * (1 + torch.special.erf((edges[None, :] - yc) / (math.sqrt(2) * sigma)))
    mass = cdf[:, 1:] - cdf[:, :-1]
    return (mass / mass.sum(1, keepdim=True)).float()


def bin_centers(lo: float, hi: float, bins: int, device: torch.device | str = "cpu") -> Tensor:
    """float32 [bins], the centre of each categorical bin."""
    edges = torch.linspace(lo, hi, bins + 1, device=device)
    return (edges[1:] + edges[:-1]) / 2


@dataclass
class RewardOutput:
    """What the model predicts at B current frames (raw, before calibration)."""

    progress_logits: Tensor  # float32 [B, bins] over [0, 1]
    success_logit: Tensor  # float32 [B]
    value_logits: Tensor  # float32 [B, bins] over [-1, 0]

    def progress(self) -> Tensor:
        """Expected progress, float32 [B] in [0, 1]."""
        c = bin_centers(0.0, 1.0, self.progress_logits.shape[-1], self.progress_logits.device)
        return self.progress_logits.softmax(-1) @ c

    def value(self) -> Tensor:
        """Expected normalised return, float32 [B] in [-1, 0]."""
        c = bin_centers(VALUE_LO, VALUE_HI, self.value_logits.shape[-1], self.value_logits.device)
        return self.value_logits.softmax(-1) @ c

    def p_success_future(self) -> Tensor:
        """Chance the episode will succeed: value mass above -0.5 (REWARD.md), float32 [B]."""
        c = bin_centers(VALUE_LO, VALUE_HI, self.value_logits.shape[-1], self.value_logits.device)
        return (self.value_logits.softmax(-1) * (c > SUCCESS_RETURN)).sum(-1)


class PrefixPool(nn.Module):
    """Prefix tokens [N, P, D] (+ mask) -> one embedding [N, W] via Q-query multi-head attention pooling."""

    def __init__(self, d_in: int, width: int, queries: int, heads: int) -> None:
        super().__init__()
        self.q, self.h = queries, heads
        self.score = nn.Parameter(torch.randn(queries * heads, d_in) / math.sqrt(d_in))
        self.value = nn.Parameter(torch.randn(heads, d_in, width // heads) / math.sqrt(d_in))
        self.out = nn.Linear(queries * width, width)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        scores = torch.einsum("npd,kd->nkp", tokens, self.score) / math.sqrt(tokens.shape[-1])
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        pooled = scores.softmax(-1) @ tokens  # [N, Q*H, D]
        n = pooled.shape[0]
        pooled = pooled.view(n, self.q, self.h, -1)
        heads = torch.einsum("nqhd,hde->nqhe", pooled, self.value)  # [N, Q, H, W/H]
        return self.out(heads.reshape(n, -1))


class RewardModel(nn.Module):
    """Progress, success and value from cached backbone features; see the module docstring."""

    def __init__(self, cfg: RewardModelConfig, feature_dim: int, state_dim: int) -> None:
        """Args:
        cfg: the model's shape.
        feature_dim: D of the backbone's prefix tokens.
        state_dim: S of the robot state (0: no state).
        """
        super().__init__()
        self.cfg, self.feature_dim, self.state_dim = cfg, feature_dim, state_dim
        w = cfg.width
        self.pool = PrefixPool(feature_dim, w, cfg.pool_tokens, cfg.heads)
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))
        self.state_mlp = nn.Sequential(nn.Linear(max(state_dim, 1), w), nn.GELU(), nn.Linear(w, w))
        self.frame_norm = nn.LayerNorm(w)
        self.pos = nn.Parameter(torch.randn(cfg.window + 1, w) * 0.02)  # slot in the window, not time
        layer = nn.TransformerEncoderLayer(
            w, cfg.heads, 4 * w, dropout=cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.temporal = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.progress_head = nn.Linear(w, cfg.bins)
        self.success_head = nn.Linear(w, 1)
        self.value_head = nn.Linear(w, cfg.bins)
        causal = torch.triu(torch.ones(cfg.window + 1, cfg.window + 1, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal", causal, persistent=False)

    def set_state_stats(self, mean: Tensor, std: Tensor) -> None:
        """State normalisation from the training data (std floored so constant dims stay finite)."""
        self.state_mean.copy_(mean)
        self.state_std.copy_(std.clamp_min(1e-3))

    def embed_frames(self, tokens: Tensor, mask: Tensor, state: Tensor) -> Tensor:
        """Per-frame embeddings.

        Args:
            tokens: float [N, P, D] prefix tokens (float16 is upcast).
            mask: bool [N, P].
            state: float32 [N, S].

        Returns:
            float32 [N, W].

        Raises:
            ValueError: D or S do not match the model.
        """
        if tokens.shape[-1] != self.feature_dim or state.shape[-1] != self.state_dim:
            raise ValueError(
                f"reward model takes features of width {self.feature_dim} and states of dim {self.state_dim}, "
                f"got {tokens.shape[-1]} and {state.shape[-1]}"
            )
        x = self.pool(tokens.float(), mask)
        if self.state_dim:
            s = (state - self.state_mean) / self.state_std
        else:
            s = torch.zeros(state.shape[0], 1, device=state.device)
        return self.frame_norm(x + self.state_mlp(s))

    def forward_windows(self, frames: Tensor) -> RewardOutput:
        """Heads at the last frame of each window.

        Args:
            frames: float32 [B, K + 1, W]: the first frame, then K window frames, oldest first.
        """
        if frames.shape[1] != self.cfg.window + 1:
            raise ValueError(f"reward model windows have {self.cfg.window + 1} frames, got {frames.shape[1]}")
        h = self.temporal(frames + self.pos, mask=self.causal, is_causal=True)
        z = self.norm(h[:, -1])
        return RewardOutput(self.progress_head(z), self.success_head(z).squeeze(-1), self.value_head(z))

    def forward(self, tokens: Tensor, mask: Tensor, state: Tensor) -> RewardOutput:
        """Heads from gathered windows: tokens [B, K+1, P, D], mask [B, K+1, P], state [B, K+1, S]."""
        b, k = tokens.shape[:2]
        emb = self.embed_frames(tokens.flatten(0, 1), mask.flatten(0, 1), state.flatten(0, 1))
        return self.forward_windows(emb.view(b, k, -1))


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of the success logit, fit on held-out episodes, and the chosen threshold.

    p = sigmoid(a * logit + b). Temperature scaling is the case b = 0; the bias term also
    undoes the shift that BCE's positive weight puts on the logit.
    """

    a: float = 1.0
    b: float = 0.0
    threshold: float = 0.5  # on the calibrated probability; set for FPR <= max_fpr on held-out episodes
    max_fpr: float = 0.02

    def success_prob(self, logit: Tensor) -> Tensor:
        return torch.sigmoid(self.a * logit + self.b)
