"""The chunk critic robots act with: Q(observation, first k actions of a chunk), an ensemble.

Q estimates the discounted success of executing the chunk's first ``chunk`` actions from an
observation and acting on afterwards: ``E[gamma^(steps to success) * 1{success}]``, in [0, 1]
(a failed or timed-out episode is worth 0, a fast success close to 1). Each of the ensemble's
heads is an MLP with LayerNorm on the pooled frozen prefix, the normalised state and the
normalised chunk; their spread is the critic's own uncertainty, which acting can be pessimistic
about (``score = mean - risk * std``).

    critic = load_critic("runs/critic/critic.safetensors")        # checks the backbone fingerprint
    q = critic.values(pooled, state_n, chunk_n)                   # float32 [E, B] in [0, 1]
    best = critic.score(q, risk=1.0).argmax()                     # mean - 1.0 * std

The learner fits it (learner/chunk_critic.py); best-of-N acting (rlpost/policy/best_of_n.py)
and the RL actors read it. A critic file travels beside the head it was fitted for and names
the backbone fingerprint of the features it reads.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from torch import Tensor, nn

from rlpost.policy.backbone import Prefix
from rlpost.policy.checkpoint import CheckpointError, read_tensor_file
from rlpost.policy.layers import layer_norm_mlp

CRITIC_FORMAT = "rlpost-chunk-critic"


def pool_prefix(prefix: Prefix) -> Tensor:
    """Masked mean and max of the prefix tokens: float32 [B, 2D]. Fixed (no learned query), so
    each frame is pooled once and the critics are MLPs on small vectors."""
    m = prefix.mask.unsqueeze(-1)
    mean = (prefix.tokens * m).sum(1) / m.sum(1).clamp(min=1)
    peak = prefix.tokens.masked_fill(~m, float("-inf")).amax(1)
    return torch.cat([mean, peak], -1)


@dataclass(frozen=True)
class CriticSpec:
    """The shape of a chunk critic and what its inputs mean; saved in the critic file."""

    prefix_width: int  # D of the backbone's tokens (the pooled input is 2D)
    state_dim: int  # the policy's state dims (after state_keep), normalised by the policy
    action_dim: int  # A
    chunk: int  # k: the critic scores a chunk's first k actions (the robots execute k per chunk)
    heads: int = 5  # ensemble size
    width: int = 256
    gamma: float = 0.995  # discount per control step
    backbone_fingerprint: str = ""  # the frozen backbone whose features it reads
    version: int = 0  # the head version it was fitted for

    def __post_init__(self) -> None:
        if (
            min(self.prefix_width, self.action_dim, self.chunk, self.heads, self.width) < 1
            or self.state_dim < 0
        ):
            raise ValueError(f"critic spec: every size must be >= 1 (state_dim >= 0), got {self}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"critic spec: gamma={self.gamma} must be in (0, 1]")

    @property
    def in_dim(self) -> int:
        return 2 * self.prefix_width + self.state_dim + self.chunk * self.action_dim


class ChunkQ(nn.Module):
    """The ensemble: (pooled [B, 2D], state [B, S], chunk [B, k, A]) -> logits float32 [E, B]."""

    def __init__(self, spec: CriticSpec) -> None:
        super().__init__()
        self.spec = spec
        self.heads = nn.ModuleList(layer_norm_mlp(spec.in_dim, spec.width, 1) for _ in range(spec.heads))

    def inputs(self, pooled: Tensor, state: Tensor, chunk: Tensor) -> Tensor:
        s = self.spec
        want = (chunk.shape[0], s.chunk, s.action_dim)
        if (
            tuple(chunk.shape) != want
            or pooled.shape[-1] != 2 * s.prefix_width
            or state.shape[-1] != s.state_dim
        ):
            raise ValueError(
                f"chunk critic: pooled {tuple(pooled.shape)}, state {tuple(state.shape)}, chunk "
                f"{tuple(chunk.shape)}; expected [B, {2 * s.prefix_width}], [B, {s.state_dim}], [B, {s.chunk}, {s.action_dim}]"
            )
        return torch.cat([pooled, state, chunk.flatten(1)], -1)

    def forward(self, pooled: Tensor, state: Tensor, chunk: Tensor) -> Tensor:
        x = self.inputs(pooled, state, chunk)
        return torch.stack([h(x)[:, 0] for h in self.heads])

    def head_logits(self, e: int, pooled: Tensor, state: Tensor, chunk: Tensor) -> Tensor:
        """Head ``e`` alone, float32 [B] (each head trains on its own minibatch)."""
        return self.heads[e](self.inputs(pooled, state, chunk))[:, 0]


def score(values: Tensor, risk: float) -> Tensor:
    """Ensemble values [E, ...] -> mean - risk * std over the heads, [...]."""
    if values.shape[0] < 2:
        return values.mean(0)
    return values.mean(0) - risk * values.std(0)


@dataclass
class ChunkCritic:
    """A fitted critic: its spec and ensemble. See the module docstring."""

    spec: CriticSpec
    net: ChunkQ

    @torch.no_grad()
    def values(self, pooled: Tensor, state: Tensor, chunk: Tensor) -> Tensor:
        """Q of each head, float32 [E, B] in [0, 1]; inputs as :class:`ChunkQ` takes them."""
        return torch.sigmoid(self.net(pooled, state, chunk))

    score = staticmethod(score)

    def check_backbone(self, fingerprint: str, where: str) -> None:
        if self.spec.backbone_fingerprint and self.spec.backbone_fingerprint != fingerprint:
            raise CheckpointError(
                f"{where}: the critic reads features of backbone {self.spec.backbone_fingerprint}, "
                f"this policy's backbone is {fingerprint}"
            )


def save_critic(critic: ChunkCritic, path: str | Path) -> Path:
    """Write the critic to one safetensors file (spec in its metadata), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().numpy().copy() for k, v in critic.net.state_dict().items()}
    meta = {"format": CRITIC_FORMAT, "spec": json.dumps(asdict(critic.spec))}
    tmp = path.with_name(f".{path.name}.tmp")
    save_numpy(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_critic(path: str | Path, device: str | torch.device = "cpu") -> ChunkCritic:
    """Read a critic written by :func:`save_critic`.

    Raises:
        CheckpointError: the file is missing, truncated, not a critic, or its weights do not fit its spec.
    """
    path = Path(path)
    meta, tensors = read_tensor_file(path, "critic")
    if meta.get("format") != CRITIC_FORMAT:
        raise CheckpointError(f"{path}: not an rlpost chunk critic (format={meta.get('format')!r})")
    try:
        spec = CriticSpec(**json.loads(meta["spec"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt critic spec ({e})") from e
    net = ChunkQ(spec)
    own = net.state_dict()
    missing, unexpected = own.keys() - tensors.keys(), tensors.keys() - own.keys()
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: critic weights do not fit its spec: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
        )
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"{path}: critic weight {k!r} has shape {v.shape}, spec needs {tuple(own[k].shape)}"
            )
        if not np.all(np.isfinite(v)):
            raise CheckpointError(f"{path}: critic weight {k!r} contains NaN/Inf")
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
    return ChunkCritic(spec, net.to(device).eval())
