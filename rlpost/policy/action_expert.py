"""The flow-matching action expert: a transformer over [state, H noisy actions] that
cross-attends to the backbone's prefix and predicts the flow velocity.

The prefix is fixed while a chunk is integrated, so :meth:`ActionExpert.prefix_kv`
projects it to every layer's cross-attention keys/values once, and
:meth:`ActionExpert.velocity` reuses them at each of the N Euler steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rlpost.policy.backbone import Prefix
from rlpost.policy.config import ExpertConfig
from rlpost.policy.layers import Attention, Mlp, key_padding_mask, sinusoidal_embedding

# Advantage-indicator values of the ``cond`` input (learner's adv_conditioned mode).
COND_NEGATIVE, COND_POSITIVE, COND_DROPPED = 0, 1, 2


@dataclass
class PrefixKV:
    """Per-layer cross-attention keys/values of one prefix, computed once per chunk."""

    kv: list[tuple[Tensor, Tensor]]  # per layer: keys, values float32 [B, heads, P, dh]
    attn_mask: Tensor  # bool [B, 1, 1, P]


class ExpertBlock(nn.Module):
    """Self-attention over the suffix, cross-attention to the prefix, MLP (pre-norm)."""

    def __init__(self, cfg: ExpertConfig, prefix_width: int) -> None:
        super().__init__()
        w = cfg.width
        self.norm_self, self.norm_cross, self.norm_mlp = nn.LayerNorm(w), nn.LayerNorm(w), nn.LayerNorm(w)
        self.self_attn = Attention(w, cfg.heads, dropout=cfg.dropout)
        self.cross_attn = Attention(w, cfg.heads, kv_width=prefix_width, dropout=cfg.dropout)
        self.mlp = Mlp(w, cfg.mlp_ratio, cfg.dropout)

    def forward(self, x: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor) -> Tensor:
        x = x + self.self_attn(self.norm_self(x))
        x = x + self.cross_attn.attend(self.norm_cross(x), k, v, attn_mask)
        return x + self.mlp(self.norm_mlp(x))


class ActionExpert(nn.Module):
    """Predicts the velocity ε − a of the noisy chunk x_τ = τ·ε + (1−τ)·a (pi0's convention).

    All inputs are normalised: state float32 [B, S], x_t float32 [B, H, A], tau float32 [B].
    """

    def __init__(
        self, cfg: ExpertConfig, prefix_width: int, state_dim: int, action_dim: int, horizon: int
    ) -> None:
        super().__init__()
        self.cfg, self.horizon, self.action_dim, self.state_dim = cfg, horizon, action_dim, state_dim
        w = cfg.width
        self.prefix_norm = nn.LayerNorm(prefix_width)
        # A robot without proprioception (S = 0) still gets a learned state token.
        self.state_proj = nn.Linear(state_dim, w) if state_dim > 0 else None
        self.state_token = nn.Parameter(torch.zeros(w))
        self.action_in = nn.Linear(action_dim, w)
        # pi0: the action token and the time embedding are mixed by an MLP.
        self.action_time_mlp = nn.Sequential(nn.Linear(2 * w, w), nn.SiLU(), nn.Linear(w, w))
        self.pos = nn.Parameter(torch.randn(1 + horizon, w) * 0.02)
        self.cond_embed = nn.Embedding(3, w) if cfg.use_cond else None
        self.blocks = nn.ModuleList(ExpertBlock(cfg, prefix_width) for _ in range(cfg.depth))
        self.out_norm = nn.LayerNorm(w)
        self.action_out = nn.Linear(w, action_dim)
        nn.init.zeros_(self.action_out.weight)  # start from the zero velocity: stable early training
        nn.init.zeros_(self.action_out.bias)

    def prefix_kv(self, prefix: Prefix) -> PrefixKV:
        """Project the prefix to every layer's keys/values (once per chunk)."""
        ctx = self.prefix_norm(prefix.tokens)
        return PrefixKV(
            [blk.cross_attn.project_kv(ctx) for blk in self.blocks], key_padding_mask(prefix.mask)
        )

    def velocity(
        self, kv: PrefixKV, state: Tensor, x_t: Tensor, tau: Tensor, cond: Tensor | None = None
    ) -> Tensor:
        """Args:
            kv: from :meth:`prefix_kv`.
            state: float32 [B, S], normalised.
            x_t: float32 [B, H, A], the noisy chunk at time tau.
            tau: float32 [B], flow time in [0, 1] (1 = pure noise).
            cond: int64 [B] in {COND_NEGATIVE, COND_POSITIVE, COND_DROPPED}; needs use_cond.

        Returns:
            The predicted velocity ε − a, float32 [B, H, A].
        """
        b = x_t.shape[0]
        w = self.cfg.width
        state_tok = self.state_token.expand(b, w)
        if self.state_proj is not None:
            state_tok = state_tok + self.state_proj(state)
        if self.cond_embed is not None:
            if cond is None:
                cond = torch.full((b,), COND_DROPPED, dtype=torch.long, device=x_t.device)
            state_tok = state_tok + self.cond_embed(cond)
        elif cond is not None:
            raise ValueError("cond was given but the action expert was built with use_cond=False")
        t_emb = sinusoidal_embedding(tau, w).unsqueeze(1).expand(b, self.horizon, w)
        act_tok = self.action_time_mlp(torch.cat([self.action_in(x_t), t_emb], dim=-1))
        x = torch.cat([state_tok.unsqueeze(1), act_tok], dim=1) + self.pos
        for blk, (k, v) in zip(self.blocks, kv.kv, strict=True):
            x = blk(x, k, v, kv.attn_mask)
        return self.action_out(self.out_norm(x[:, 1:]))

    def forward(
        self, prefix: Prefix, state: Tensor, x_t: Tensor, tau: Tensor, cond: Tensor | None = None
    ) -> Tensor:
        return self.velocity(self.prefix_kv(prefix), state, x_t, tau, cond)
