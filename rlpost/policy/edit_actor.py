"""The edit actor: a small net beside the frozen head that corrects the head's sampled chunk.

It reads what the chunk critic reads (pooled frozen features, normalised state) and the first k
actions the head sampled, and adds a bounded correction to them, in the policy's normalised
action units (RL Token and EXPO's light edit policy): ``edit = bound * tanh(mlp(...))``. The head
and the backbone never change; the actor ships beside them in its own file, versioned with the
critic it was trained against (learner/edit_actor.py trains it).

    actor = load_edit_actor("runs/x/edit_actor.safetensors")
    chunks = EditedPolicy(vla, actor).act(batch, generator)    # float32 [B, H, A], robot units
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from rlpost.policy.best_of_n import critic_inputs
from rlpost.policy.checkpoint import CheckpointError
from rlpost.policy.chunk_critic import pool_prefix
from rlpost.policy.layers import layer_norm_mlp
from rlpost.policy.side_net_files import load_side_net, save_side_net
from rlpost.policy.vla import VLA, ObsBatch, _tensor

EDIT_FORMAT = "rlpost-edit-actor"


@dataclass(frozen=True)
class EditSpec:
    """The shape of an edit actor; saved in its file."""

    prefix_width: int
    state_dim: int
    action_dim: int
    chunk: int  # k: it edits the first k actions (the ones a robot executes)
    bound: float = 0.5  # largest edit per action dimension, normalised units
    width: int = 256
    backbone_fingerprint: str = ""
    version: int = 0

    def __post_init__(self) -> None:
        if min(self.prefix_width, self.action_dim, self.chunk, self.width) < 1 or self.state_dim < 0:
            raise ValueError(f"edit actor spec: every size must be >= 1 (state_dim >= 0), got {self}")
        if not 0.0 < self.bound <= 5.0:
            raise ValueError(f"edit actor spec: bound={self.bound} must be in (0, 5]")


class EditActor(nn.Module):
    """(pooled [B, 2D], state [B, S], base chunk [B, k, A]) -> edit float32 [B, k, A] in [-bound, bound]."""

    def __init__(self, spec: EditSpec) -> None:
        super().__init__()
        self.spec = spec
        n_in = 2 * spec.prefix_width + spec.state_dim + spec.chunk * spec.action_dim
        self.mlp = layer_norm_mlp(n_in, spec.width, spec.chunk * spec.action_dim)
        nn.init.zeros_(self.mlp[-1].weight)  # starts as no edit: the head's own chunks
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, pooled: Tensor, state: Tensor, base: Tensor) -> Tensor:
        x = torch.cat([pooled, state, base.flatten(1)], -1)
        # the input LayerNorm keeps any finite input finite; tanh keeps the edit in bounds
        return self.spec.bound * torch.tanh(self.mlp(x)).view(base.shape)


@dataclass
class EditedPolicy:
    """Acts with the head's chunk, its first k actions corrected by the actor."""

    vla: VLA
    actor: EditActor

    def __post_init__(self) -> None:
        s, c = self.actor.spec, self.vla.cfg
        if s.chunk > c.horizon or s.action_dim != c.action_dim or s.state_dim != c.policy_state_dim:
            raise ValueError(
                f"edit actor: edits {s.chunk} actions of dim {s.action_dim} (state {s.state_dim}); the policy "
                f"samples {c.horizon} of dim {c.action_dim} (state {c.policy_state_dim})"
            )
        if s.backbone_fingerprint and s.backbone_fingerprint != self.vla.backbone.fingerprint():
            raise CheckpointError(
                f"edit actor: trained on backbone {s.backbone_fingerprint}, this policy's is {self.vla.backbone.fingerprint()}"
            )

    @torch.no_grad()
    def act(
        self, batch: ObsBatch, generator: torch.Generator | None = None, noise_scale: float | None = None
    ) -> tuple[Tensor, Tensor]:
        """(chunks float32 [B, H, A] robot units, the noise the head sampled them from)."""
        prefix = self.vla.encode(batch)
        state = _tensor(batch.state)
        chunks, noise = (
            x[:, 0] for x in self.vla.sampled_candidates(prefix, state, 1, generator, noise_scale)
        )
        k = self.actor.spec.chunk
        s, base = critic_inputs(self.vla, state, chunks, k)
        edited = base + self.actor(pool_prefix(prefix), s, base)
        out = chunks.clone()
        out[:, :k] = self.vla.action_norm.unnormalize(edited)
        return out, noise


def save_edit_actor(actor: EditActor, path: str | Path) -> Path:
    return save_side_net(actor, actor.spec, EDIT_FORMAT, path)


def load_edit_actor(path: str | Path) -> EditActor:
    """Raises CheckpointError: missing, truncated, not a edit actor, weights not fitting its spec."""
    return load_side_net(path, EDIT_FORMAT, "edit actor", lambda spec: EditActor(EditSpec(**spec)))  # type: ignore[return-value]
