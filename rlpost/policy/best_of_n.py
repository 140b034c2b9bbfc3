"""Best-of-N acting: sample N chunks from the head, execute the one the chunk critic ranks highest.

The first test of a critic (value-guided sampling): it trains nothing, so if it does not beat
N = 1 on the same seeds, no actor extracted from the same critic will beat imitation. One
backbone pass per observation; the N chunks share its prefix and are sampled in one batch::

    pick = BestOfN(vla, critic, n=8, risk=1.0)
    out = pick.choose(ObsBatch.stack(observations), generator)   # out.chunks [B, H, A]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rlpost.policy.chunk_critic import ChunkCritic, pool_prefix
from rlpost.policy.vla import VLA, ObsBatch, _tensor


@dataclass(frozen=True)
class Choice:
    """What best-of-N chose for B observations."""

    chunks: Tensor  # float32 [B, H, A], robot units: the chosen chunk of each observation
    noise: Tensor  # float32 [B, H, A], the initial noise the chosen chunk was sampled from
    index: Tensor  # int64 [B], which of the N candidates
    scores: Tensor  # float32 [B, N], mean - risk * std of the ensemble for every candidate
    values: Tensor  # float32 [E, B, N], every head's Q of every candidate
    candidates: Tensor  # float32 [B, N, H, A], every chunk sampled


def critic_inputs(vla: VLA, state: Tensor, chunks: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(normalised policy state [B, S'], normalised first k actions [B, k, A]) of robot-unit
    ``state`` [B, S] and ``chunks`` [B, >=k, A]: what the critic reads."""
    s = vla.state_norm.normalize(vla.select_state(state.to(vla._device())))
    return s, vla.action_norm.normalize(chunks[:, :k].to(vla._device()))


@dataclass
class BestOfN:
    """Samples ``n`` chunks per observation and keeps the best by the critic (see module docstring)."""

    vla: VLA
    critic: ChunkCritic
    n: int
    risk: float = 0.0  # pessimism: rank by mean - risk * std of the ensemble

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"best-of-N: n={self.n} must be >= 1")
        if self.risk < 0:
            raise ValueError(f"best-of-N: risk={self.risk} must be >= 0")
        spec, cfg = self.critic.spec, self.vla.cfg
        if (
            spec.chunk > cfg.horizon
            or spec.action_dim != cfg.action_dim
            or spec.state_dim != cfg.policy_state_dim
        ):
            raise ValueError(
                f"best-of-N: the critic scores {spec.chunk} actions of dim {spec.action_dim} with state dim "
                f"{spec.state_dim}; the policy samples {cfg.horizon} of dim {cfg.action_dim}, state dim {cfg.policy_state_dim}"
            )
        if spec.prefix_width != self.vla.backbone.width:
            raise ValueError(
                f"best-of-N: the critic reads {spec.prefix_width}-wide features, the backbone gives {self.vla.backbone.width}"
            )
        self.critic.check_backbone(self.vla.backbone.fingerprint(), "best-of-N")

    @torch.no_grad()
    def choose(
        self, batch: ObsBatch, generator: torch.Generator | None = None, noise_scale: float | None = None
    ) -> Choice:
        prefix = self.vla.encode(batch)
        state = _tensor(batch.state)
        cands, noise = self.vla.sampled_candidates(
            prefix, state, self.n, generator, noise_scale
        )  # [B, N, H, A]
        b, n = cands.shape[:2]
        pooled = pool_prefix(prefix).repeat_interleave(n, 0)
        s, c = critic_inputs(
            self.vla, state.repeat_interleave(n, 0), cands.flatten(0, 1), self.critic.spec.chunk
        )
        values = self.critic.values(pooled, s, c).view(-1, b, n)
        scores = self.critic.score(values, self.risk)
        index = scores.argmax(1)
        rows = torch.arange(b)
        return Choice(cands[rows, index], noise[rows, index], index, scores, values, cands)
