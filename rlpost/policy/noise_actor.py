"""The noise actor: a small net that picks the flow's initial noise for the frozen head (DSRL).

The head maps noise to a chunk; the noise actor chooses the noise from what the critic reads
(pooled frozen features, normalised state), bounded by ``bound * tanh``. The head and backbone
never change; any chunk it makes is one the head can produce, and the recorded noise
reproduces it exactly. It ships beside the head in its own file (learner/noise_actor.py trains it).

    actor = load_noise_actor("runs/x/noise_actor.safetensors")
    chunks, noise = NoisePolicy(vla, actor, explore=0.3).act(batch, generator)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from rlpost.policy.checkpoint import CheckpointError
from rlpost.policy.chunk_critic import pool_prefix
from rlpost.policy.layers import layer_norm_mlp
from rlpost.policy.side_net_files import load_side_net, save_side_net
from rlpost.policy.vla import VLA, ObsBatch, _tensor

NOISE_FORMAT = "rlpost-noise-actor"


@dataclass(frozen=True)
class NoiseSpec:
    """The shape of a noise actor; saved in its file."""

    prefix_width: int
    state_dim: int
    horizon: int
    action_dim: int
    bound: float = 2.0  # the largest noise per entry (the prior's draws are N(0, 1))
    width: int = 256
    backbone_fingerprint: str = ""
    version: int = 0

    def __post_init__(self) -> None:
        if min(self.prefix_width, self.horizon, self.action_dim, self.width) < 1 or self.state_dim < 0:
            raise ValueError(f"noise actor spec: every size must be >= 1 (state_dim >= 0), got {self}")
        if not 0.0 < self.bound <= 5.0:
            raise ValueError(f"noise actor spec: bound={self.bound} must be in (0, 5]")


class NoiseActor(nn.Module):
    """(pooled [B, 2D], state [B, S]) -> noise float32 [B, H, A] in [-bound, bound]."""

    def __init__(self, spec: NoiseSpec) -> None:
        super().__init__()
        self.spec = spec
        n_in = 2 * spec.prefix_width + spec.state_dim
        self.mlp = layer_norm_mlp(n_in, spec.width, spec.horizon * spec.action_dim)

    def forward(self, pooled: Tensor, state: Tensor) -> Tensor:
        out = self.mlp(torch.cat([pooled, state], -1))
        return self.spec.bound * torch.tanh(out).view(-1, self.spec.horizon, self.spec.action_dim)


@dataclass
class NoisePolicy:
    """Acts with the head from the actor's noise (plus ``explore`` times N(0, I) while practising)."""

    vla: VLA
    actor: NoiseActor
    explore: float = 0.0

    def __post_init__(self) -> None:
        s, c = self.actor.spec, self.vla.cfg
        if (s.horizon, s.action_dim, s.state_dim) != (c.horizon, c.action_dim, c.policy_state_dim):
            raise ValueError(
                f"noise actor: makes noise [{s.horizon}, {s.action_dim}] from state dim {s.state_dim}; the policy "
                f"samples [{c.horizon}, {c.action_dim}] with state dim {c.policy_state_dim}"
            )
        if s.backbone_fingerprint and s.backbone_fingerprint != self.vla.backbone.fingerprint():
            raise CheckpointError(
                f"noise actor: trained on backbone {s.backbone_fingerprint}, this policy's is {self.vla.backbone.fingerprint()}"
            )
        if self.explore < 0:
            raise ValueError(f"noise actor: explore={self.explore} must be >= 0")

    @torch.no_grad()
    def act(self, batch: ObsBatch, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(chunks float32 [B, H, A] robot units, the noise they were sampled from)."""
        prefix = self.vla.encode(batch)
        state = _tensor(batch.state)
        s = self.vla.state_norm.normalize(self.vla.select_state(state.to(self.vla._device())))
        noise = self.actor(pool_prefix(prefix), s)
        if self.explore > 0:
            noise = noise + self.explore * torch.randn(noise.shape, generator=generator).to(noise.device)
        return self.vla._act_sample(prefix, state, noise, generator, None), noise


def save_noise_actor(actor: NoiseActor, path: str | Path) -> Path:
    return save_side_net(actor, actor.spec, NOISE_FORMAT, path)


def load_noise_actor(path: str | Path) -> NoiseActor:
    """Raises CheckpointError: missing, truncated, not a noise actor, weights not fitting its spec."""
    return load_side_net(path, NOISE_FORMAT, "noise actor", lambda spec: NoiseActor(NoiseSpec(**spec)))  # type: ignore[return-value]
