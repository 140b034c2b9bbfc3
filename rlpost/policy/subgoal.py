"""A small read-out that regresses hindsight subgoals (rlpost.data.subgoals) from the prefix.

Used only as an auxiliary loss while pretraining the whole VLA; it is not part of the
action head and never ships to robots. A learned query attends over the prefix tokens,
so it can pick the keypoint of the object the instruction names.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlpost.policy.backbone import Prefix


class SubgoalHead(nn.Module):
    """Prefix [B, P, D] -> subgoal float32 [B, K] (in the state's normalised units)."""

    def __init__(self, width: int, out_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, out_dim)
        )

    def forward(self, prefix: Prefix) -> Tensor:
        q = self.query.expand(prefix.batch_size, -1, -1)
        pooled, _ = self.attn(q, prefix.tokens, prefix.tokens, key_padding_mask=~prefix.mask)
        return self.mlp(pooled[:, 0])
