"""Training the edit actor against the chunk critic (DDPG-style, the critic frozen).

At every window's state the head's own candidate chunks (WindowData.candidates) are the base the
actor edits; it ascends the critic's pessimistic score of the edited chunk, held near the base by
a penalty on the edit's size (the "stay close to the reference chunk" term of RL Token / EXPO):

    loss = -(mean_e Q_e(s, base + edit) - risk * std_e Q_e(s, base + edit)) + penalty * |edit|^2

Many updates per stored step are cheap here (the features are pooled once), which is the high
update-to-data ratio the off-policy recipes rely on. Half of each batch is drawn from windows of
demonstrations and takeovers when there are any (RLPD's symmetric sampling).

    actor, fit = fit_edit_actor(data, critic, spec, EditConfig(), seed)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from learner.chunk_critic import WindowData
from rlpost.policy.chunk_critic import ChunkCritic, score
from rlpost.policy.edit_actor import EditActor, EditSpec


@dataclass
class EditConfig:
    """How the edit actor is fitted (``edit.*``)."""

    bound: float = 0.5  # largest edit per action dimension, normalised units
    penalty: float = 1.0  # weight of |edit|^2: the pull toward the head's own chunk
    risk: float = 1.0  # ascend mean - risk * std of the critic's ensemble
    width: int = 256
    updates: int = 1000
    batch_size: int = 256
    lr: float = 3e-4
    human_fraction: float = 0.5  # of each batch, from demo and takeover windows (when there are any)

    def __post_init__(self) -> None:
        if not 0.0 < self.bound <= 5.0 or self.penalty < 0 or self.risk < 0:
            raise ValueError(
                f"edit: bound={self.bound} in (0, 5], penalty={self.penalty} and risk={self.risk} >= 0"
            )
        if min(self.width, self.updates, self.batch_size) < 1 or not 0.0 <= self.human_fraction <= 1.0:
            raise ValueError("edit: width, updates, batch_size >= 1 and human_fraction in [0, 1]")


@dataclass
class EditFit:
    """What one fit of the edit actor did (on all windows)."""

    q_base: float  # the critic's score of the head's chunks
    q_edited: float  # ... of the edited chunks
    edit_rms: float  # rms edit, normalised units
    loss: float

    def metrics(self) -> dict[str, float]:
        return {f"edit/{k}": float(v) for k, v in self.__dict__.items()}


def fit_edit_actor(
    data: WindowData,
    critic: ChunkCritic,
    spec: EditSpec,
    cfg: EditConfig,
    seed: int,
    human: np.ndarray | None = None,
) -> tuple[EditActor, EditFit]:
    """A fresh edit actor fitted against ``critic`` (whose weights it never changes).

    ``human`` (bool [R]) marks windows of demonstrations and takeovers for the batch mix.
    """
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31)))
        actor = EditActor(spec)
    critic.net.requires_grad_(False)
    opt = torch.optim.AdamW(actor.parameters(), lr=cfg.lr, weight_decay=1e-4)
    rows_all = np.arange(len(data))
    rows_h = np.flatnonzero(human) if human is not None else np.zeros(0, np.int64)
    m = data.candidates.shape[1]
    losses = []
    for _ in range(cfg.updates):
        n_h = round(cfg.human_fraction * cfg.batch_size) if len(rows_h) else 0
        rows = np.concatenate([rng.choice(rows_h, n_h), rng.choice(rows_all, cfg.batch_size - n_h)]).astype(
            np.int64
        )
        r = torch.from_numpy(rows)
        base = data.candidates[r, torch.from_numpy(rng.integers(0, m, len(rows)))]
        edit = actor(data.pooled[r], data.state[r], base)
        q = torch.sigmoid(critic.net(data.pooled[r], data.state[r], base + edit))
        loss = -score(q, cfg.risk).mean() + cfg.penalty * edit.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(actor.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    actor.eval()
    with torch.no_grad():
        base = data.candidates[:, 0]
        edit = actor(data.pooled, data.state, base)
        q0 = score(critic.values(data.pooled, data.state, base), cfg.risk).mean()
        q1 = score(critic.values(data.pooled, data.state, base + edit), cfg.risk).mean()
    fit = EditFit(float(q0), float(q1), float(edit.pow(2).mean().sqrt()), float(np.mean(losses[-50:])))
    return actor, fit
