"""Training the noise actor against the chunk critic, through the frozen head's flow (DSRL).

The actor's noise goes through the head's Euler steps (the head's weights frozen, gradients
flowing to the noise only) to a chunk; the actor ascends the critic's pessimistic score of that
chunk's first k actions, with a penalty on the noise's size that keeps it where the head was
trained (the prior's draws are N(0, I)):

    loss = -(mean_e Q_e(s, head(s, w)) - risk * std_e Q_e(s, head(s, w))) + penalty * |w|^2 / 2

With a big head the backward pass through the flow is what costs; DSRL's noise-aliased critic
(Q over the noise, distilled from Q over actions) avoids it and is the next step there.

    actor, fit = fit_noise_actor(vla, cache.prefixes, data, critic, spec, NoiseConfig(), seed)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from learner.chunk_critic import WindowData
from rlpost.policy.backbone import Prefix
from rlpost.policy.chunk_critic import ChunkCritic, score
from rlpost.policy.flow import euler_integrate
from rlpost.policy.noise_actor import NoiseActor, NoiseSpec
from rlpost.policy.vla import VLA

PrefixFn = Callable[[Sequence[tuple[str, int]]], Prefix]


@dataclass
class NoiseConfig:
    """How the noise actor is fitted (``noise.*``)."""

    bound: float = 2.0
    penalty: float = 0.1  # weight of |w|^2 / 2 (the prior's log-density): keeps the noise in the head's range
    risk: float = 1.0
    explore: float = 0.3  # N(0, explore^2) added to the actor's noise while practising
    width: int = 256
    updates: int = 300
    batch_size: int = 128
    lr: float = 3e-4

    def __post_init__(self) -> None:
        if not 0.0 < self.bound <= 5.0 or self.penalty < 0 or self.risk < 0 or self.explore < 0:
            raise ValueError(
                f"noise: bound={self.bound} in (0, 5], penalty={self.penalty}, risk={self.risk}, explore={self.explore} >= 0"
            )
        if min(self.width, self.updates, self.batch_size) < 1:
            raise ValueError("noise: width, updates and batch_size must be >= 1")


@dataclass
class NoiseFit:
    q_prior: float  # the critic's score of chunks from N(0, I) noise (the head as it acts)
    q_actor: float  # ... from the actor's noise
    noise_rms: float
    loss: float

    def metrics(self) -> dict[str, float]:
        return {f"noise/{k}": float(v) for k, v in self.__dict__.items()}


class _Frozen:
    """The head's parameters without gradients for the duration (restored after)."""

    def __init__(self, vla: VLA) -> None:
        self.params = [p for p in vla.expert.parameters() if p.requires_grad]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p in self.params:
            p.requires_grad_(True)


def head_chunk(vla: VLA, prefix: Prefix, state_n: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The head's chunk from ``noise``, normalised units [B, H, A], differentiable in the noise."""
    if vla.expert.cond_embed is not None:
        raise ValueError(
            "noise actor: heads with an advantage-indicator input (adv_conditioned) are not supported"
        )
    with torch.no_grad():
        kv = vla.expert.prefix_kv(prefix)
    return euler_integrate(
        lambda x, tau: vla.expert.velocity(kv, state_n, x, tau, None), noise, vla.cfg.num_steps
    )


def fit_noise_actor(
    vla: VLA,
    prefixes: PrefixFn,
    data: WindowData,
    critic: ChunkCritic,
    spec: NoiseSpec,
    cfg: NoiseConfig,
    seed: int,
) -> tuple[NoiseActor, NoiseFit]:
    """A fresh noise actor fitted against ``critic`` through ``vla``'s head (neither changes)."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31)))
        actor = NoiseActor(spec)
    critic.net.requires_grad_(False)
    opt = torch.optim.AdamW(actor.parameters(), lr=cfg.lr, weight_decay=1e-4)
    k = critic.spec.chunk
    losses = []
    with _Frozen(vla):
        for _ in range(cfg.updates):
            rows = rng.integers(0, len(data), cfg.batch_size)
            r = torch.from_numpy(rows)
            prefix = prefixes([data.keys[i] for i in rows])
            w = actor(data.pooled[r], data.state[r])
            chunk = head_chunk(vla, prefix, data.state[r], w)
            q = torch.sigmoid(critic.net(data.pooled[r], data.state[r], chunk[:, :k]))
            loss = -score(q, cfg.risk).mean() + cfg.penalty * 0.5 * w.pow(2).sum((1, 2)).mean() / w[0].numel()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(actor.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
    actor.eval()
    with torch.no_grad():
        rows = rng.integers(0, len(data), min(len(data), 512))
        r = torch.from_numpy(rows)
        prefix = prefixes([data.keys[i] for i in rows])
        w = actor(data.pooled[r], data.state[r])
        prior = torch.randn(w.shape, generator=gen)
        q = [
            score(
                critic.values(
                    data.pooled[r], data.state[r], head_chunk(vla, prefix, data.state[r], z)[:, :k]
                ),
                cfg.risk,
            )
            for z in (prior, w)
        ]
    fit = NoiseFit(
        float(q[0].mean()), float(q[1].mean()), float(w.pow(2).mean().sqrt()), float(np.mean(losses[-50:]))
    )
    return actor, fit
