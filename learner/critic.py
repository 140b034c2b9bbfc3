"""A value of the policy's own returns, refit on its practice episodes (``learner.value=refit``).

Why: the reward model's value is trained once, on warm-up episodes (30 in the main job), so it
values a state by what the warm-up behaviour went on to do from it. A chunk's advantage should
compare it with what *this* policy goes on to do, so this critic is refit on the policy's own
returns whenever new practice episodes arrive.

    critic = Critic(prefix_width, state_dim, updates=500)
    stats = critic.fit(samples, cache.prefixes, rng_seed)      # a fresh net, every practice step
    value = critic.predict(keys, states, cache.prefixes)       # V(o_t), float32 [N]

Targets are the undiscounted return-to-go of the labels' reward (REWARD.md: steps to go with
the failure penalty; a cut episode bootstraps from the reward model's last value), so the
refit value stays on the reward model's scale and the advantages keep their meaning. Each fit
starts from a fresh net seeded by the caller, so a resumed learner refits the same critic from
the same episodes (nothing to checkpoint). A tenth of the episodes is held out of the fit to
report how much of the return variance the critic explains on episodes it has not seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rlpost.policy.backbone import Prefix
from rlpost.policy.chunk_critic import pool_prefix

PrefixFn = Callable[[Sequence[tuple[str, int]]], Prefix]


class ValueNet(nn.Module):
    """(pooled prefix [B, 2D], state [B, S]) -> value float32 [B]."""

    def __init__(self, prefix_width: int, state_dim: int, width: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.LayerNorm(2 * prefix_width + state_dim),
            nn.Linear(2 * prefix_width + state_dim, width),
            nn.GELU(),
            nn.Linear(width, width),
            nn.GELU(),
            nn.Linear(width, 1),
        )

    def forward(self, pooled: Tensor, state: Tensor) -> Tensor:
        return self.mlp(torch.cat([pooled, state], -1))[:, 0]


@dataclass
class ValueSamples:
    """Every step the critic learns from: its key in the feature cache, state and return-to-go."""

    keys: list[tuple[str, int]]  # (episode id, t)
    state: np.ndarray  # float32 [N, S], as the policy normalises it
    target: np.ndarray  # float32 [N], return-to-go

    def __post_init__(self) -> None:
        n = len(self.keys)
        if self.state.shape[0] != n or self.target.shape != (n,):
            raise ValueError(
                f"value samples: {n} keys, states {self.state.shape}, targets {self.target.shape} must agree"
            )
        if not np.all(np.isfinite(self.target)):
            raise ValueError(
                "value samples: returns-to-go contain NaN/Inf (check the episodes' reward labels)"
            )


@dataclass
class FitStats:
    loss: float  # mean squared error on the last fit batches
    heldout_ev: float  # explained variance of the returns on held-out episodes (NaN with < 2 episodes)
    samples: int
    episodes: int

    def metrics(self) -> dict[str, float]:
        return {
            "learner/critic_loss": self.loss,
            "learner/critic_heldout_ev": self.heldout_ev,
            "learner/critic_samples": float(self.samples),
        }


class Critic:
    """See the module docstring."""

    def __init__(
        self,
        prefix_width: int,
        state_dim: int,
        updates: int = 500,
        batch_size: int = 256,
        lr: float = 1e-3,
        width: int = 128,
    ) -> None:
        self.prefix_width, self.state_dim, self.width = prefix_width, state_dim, width
        self.updates, self.batch_size, self.lr = updates, batch_size, lr
        self.net: ValueNet | None = None
        self._pooled: dict[str, dict[int, np.ndarray]] = {}  # episode -> t -> pooled prefix (backbone frozen)

    def pooled(self, keys: Sequence[tuple[str, int]], prefixes: PrefixFn) -> np.ndarray:
        """The pooled prefix of each key, float32 [N, 2D]; each step is pooled once per critic."""
        todo = [k for k in dict.fromkeys(keys) if k[1] not in self._pooled.get(k[0], {})]
        for start in range(0, len(todo), 512):
            chunk = todo[start : start + 512]
            with torch.no_grad():
                rows = pool_prefix(prefixes(chunk)).numpy()
            for (eid, t), row in zip(chunk, rows, strict=True):
                self._pooled.setdefault(eid, {})[t] = row
        return np.stack([self._pooled[eid][t] for eid, t in keys]).astype(np.float32)

    def fit(self, samples: ValueSamples, prefixes: PrefixFn, seed: int) -> FitStats:
        """Fit a fresh value net to the samples' returns (all but a held-out tenth of the episodes)."""
        rng = np.random.default_rng(seed)
        # in the samples' order (replay's: finish order), not by id: ids may be random (uuid4), and
        # the same episodes under other ids must give the same held-out split and the same fit
        episodes = list(dict.fromkeys(eid for eid, _ in samples.keys))
        held = (
            set(rng.choice(episodes, size=len(episodes) // 10, replace=False).tolist())
            if len(episodes) >= 10
            else set()
        )
        in_fit = np.array([eid not in held for eid, _ in samples.keys])
        train_rows = np.flatnonzero(in_fit)
        with torch.random.fork_rng(devices=[]):  # seeded init without moving the caller's torch RNG
            torch.manual_seed(int(rng.integers(2**31)))
            net = ValueNet(self.prefix_width, self.state_dim, self.width)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=1e-4)
        net.train()
        x = torch.from_numpy(self.pooled(samples.keys, prefixes))
        s, y = torch.from_numpy(samples.state), torch.from_numpy(samples.target)
        losses: list[float] = []
        for _ in range(self.updates):
            rows = torch.from_numpy(
                train_rows[rng.integers(0, len(train_rows), min(self.batch_size, len(train_rows)))]
            )
            loss = (net(x[rows], s[rows]) - y[rows]).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
        self.net = net.eval()
        ev = float("nan")
        if held:
            rows = np.flatnonzero(~in_fit)
            pred = self.predict([samples.keys[i] for i in rows], samples.state[rows], prefixes)
            target = samples.target[rows]
            ev = float(1.0 - np.var(target - pred) / max(float(np.var(target)), 1e-12))
        return FitStats(float(np.mean(losses[-20:])), ev, len(samples.keys), len(episodes))

    @torch.no_grad()
    def predict(self, keys: Sequence[tuple[str, int]], state: np.ndarray, prefixes: PrefixFn) -> np.ndarray:
        """V(o) of each (episode id, t) with its normalised state, float32 [N]."""
        if self.net is None:
            raise RuntimeError("critic: predict before the first fit")
        x = torch.from_numpy(self.pooled(keys, prefixes))
        return self.net(x, torch.from_numpy(np.asarray(state, np.float32))).numpy().astype(np.float32)
