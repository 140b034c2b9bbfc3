"""fpo: flow policy optimisation (McAllister et al. 2025), head only.

    L = −mean_b min(r_b Â_b, clip(r_b, 1 ± c) Â_b),  r_b = exp(L̂_old(a_b) − L̂_θ(a_b))

with L̂ the flow-matching loss on the same (τ, ε) draws (``samples`` per sample) and the old
head the last published one (the head the robots practised with). A person's steps get the
top advantage when human_credit = positive.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from learner.advantages import standardize_per_group
from learner.rules.base import UpdateRule
from rlpost.policy import VLA, Prefix
from rlpost.policy.flow import noisy_actions, sample_time

if TYPE_CHECKING:
    from learner.replay import ReplayBatch


@dataclass
class FPOConfig:
    """fpo's settings."""

    clip: float = 0.2  # PPO clip of the likelihood-ratio surrogate
    samples: int = 4  # (tau, noise) draws per sample for the flow-loss ratio estimate

    def __post_init__(self) -> None:
        if not 0 < self.clip < 1 or self.samples < 1:
            raise ValueError(f"learner.fpo: clip={self.clip} must be in (0, 1), samples={self.samples} >= 1")


def fpo_loss(
    vla: VLA,
    old_expert: torch.nn.Module,
    prefix: Prefix,
    batch: ReplayBatch,
    cfg: FPOConfig,
    human_credit: str,
    rng: np.random.Generator,
) -> tuple[Tensor, dict[str, float]]:
    """The clipped FPO surrogate of one batch (see the module docstring)."""
    adv = standardize_per_group(batch.adv, batch.task)
    if human_credit == "positive" and batch.human.any():
        adv = np.where(batch.human, max(float(adv.max()), 1.0), adv).astype(np.float32)
    m, b = cfg.samples, prefix.batch_size
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    s = vla.state_norm.normalize(vla.select_state(torch.from_numpy(batch.state)))
    a = vla.action_norm.normalize(torch.from_numpy(batch.actions))
    rep = lambda t: t.repeat_interleave(m, 0)  # noqa: E731
    c = vla.cfg
    tau = sample_time(b * m, c.time_beta_a, c.time_beta_b, c.time_min, gen)
    x_t, u = noisy_actions(rep(a), torch.randn((b * m, *a.shape[1:]), generator=gen), tau)
    big = Prefix(rep(prefix.tokens), rep(prefix.mask))
    keep = rep(torch.from_numpy(batch.action_mask)).float()

    def cfm(expert: torch.nn.Module) -> Tensor:
        err = (expert(big, rep(s), x_t, tau) - u).pow(2).mean(-1)
        return ((err * keep).sum(-1) / keep.sum(-1).clamp(min=1.0)).view(b, m).mean(1)

    new = cfm(vla.expert)
    with torch.no_grad():
        old = cfm(old_expert)
    ratio = torch.exp((old - new).clamp(-5.0, 5.0))
    adv_t = torch.from_numpy(adv)
    surrogate = torch.min(ratio * adv_t, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv_t)
    loss = -surrogate.mean()
    clipped = ((ratio - 1).abs() > cfg.clip).float().mean()
    return loss, {
        "learner/loss": float(loss.detach()),
        "learner/fpo_ratio_mean": float(ratio.detach().mean()),
        "learner/fpo_clipped_frac": float(clipped),
        "learner/flow_loss": float(new.detach().mean()),
    }


class FPO(UpdateRule):
    """See the module docstring."""

    name = "fpo"
    uses = ("fpo",)

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.old_expert: torch.nn.Module | None = None  # the head as last published

    def start(self, vla, shipped):
        self.old_expert = copy.deepcopy(shipped.expert).requires_grad_(False)

    def loss(self, vla, prefix, batch, rng, step):
        if self.old_expert is None:
            raise ValueError(
                "learner mode fpo needs the reference (last published) expert: call start() first"
            )
        return fpo_loss(vla, self.old_expert, prefix, batch, self.cfg.fpo, self.cfg.human_credit, rng)

    def after_publish(self, shipped):
        assert self.old_expert is not None  # the reference: the head the robots will practise with
        self.old_expert.load_state_dict(shipped.expert.state_dict())
