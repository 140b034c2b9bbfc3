"""Noise-space steering (as in DSRL): a small net picks the mean of the flow's initial noise.

The action head stays untouched; what changes is where in its noise space each chunk starts,
so the head's learned action manifold is kept while the choice among its modes (which route,
how fast, retry or not) is learned from practice. An early CPU experiment on a task whose
failures are choices found it the best rule there; in rlpost's own comparisons (README, "Every
lever against its control") steering trained by regression onto Euler-inverted noise did not
beat its controls (level without takeovers on the route task, -0.22 with them).

The net reads the cached prefix (attention-pooled) and the normalised state; its output is
bounded by ``bound`` (tanh), so the noise stays where the head was trained. The last layer
starts at zero: a fresh steering net leaves the policy exactly as it was.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlpost.policy.backbone import Prefix


class SteeringNet(nn.Module):
    """(prefix [B, P, D], state [B, S]) -> noise mean float32 [B, H, A] in [-bound, bound]."""

    def __init__(
        self, prefix_width: int, state_dim: int, horizon: int, action_dim: int, bound: float, width: int = 128
    ) -> None:
        super().__init__()
        self.horizon, self.action_dim, self.bound = horizon, action_dim, bound
        self.query = nn.Parameter(torch.randn(1, 1, prefix_width) * 0.02)
        heads = 4 if prefix_width % 4 == 0 else 1
        self.pool = nn.MultiheadAttention(prefix_width, heads, batch_first=True)
        self.mlp = nn.Sequential(
            nn.Linear(prefix_width + state_dim, width),
            nn.GELU(),
            nn.Linear(width, width),
            nn.GELU(),
            nn.Linear(width, horizon * action_dim),
        )
        self.zero_output()

    @torch.no_grad()
    def zero_output(self) -> None:
        """Zero the last layer: the net then adds nothing to the noise (a fresh net's start)."""
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, prefix: Prefix, state: Tensor) -> Tensor:
        q = self.query.expand(prefix.batch_size, -1, -1)
        pooled, _ = self.pool(q, prefix.tokens, prefix.tokens, key_padding_mask=~prefix.mask)
        out = self.mlp(torch.cat([pooled[:, 0], state], -1))
        return self.bound * torch.tanh(out.view(-1, self.horizon, self.action_dim))
