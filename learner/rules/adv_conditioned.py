"""adv_conditioned: advantage-conditioned flow matching with classifier-free guidance (RECAP, pi*0.6).

L = mean_b ‖v_θ(x_τ, τ | o_b, I_b) − (ε − a_b)‖²,  I_b = 1 for the top ``positive_fraction`` of Â
per task (and a person's steps when human_credit = positive), dropped with probability
``cond_dropout`` so the head also learns the unconditioned velocity; robots act with
v_uncond + guidance · (v_pos − v_uncond).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from learner.advantages import top_fraction_indicator
from learner.rules.base import UpdateRule, extended_policy, flow_matching_loss
from rlpost.policy import VLA
from rlpost.policy.action_expert import COND_DROPPED, COND_NEGATIVE, COND_POSITIVE

if TYPE_CHECKING:
    from learner.replay import ReplayBatch


@dataclass
class AdvConditionedConfig:
    """adv_conditioned's settings."""

    positive_fraction: float = 0.3  # top fraction (per task) marked positive
    cond_dropout: float = 0.3  # indicator dropped, for classifier-free guidance (~30% as in RECAP)
    guidance: float = 1.0  # guidance weight when acting (1 = no guidance)

    def __post_init__(self) -> None:
        if not 0 < self.positive_fraction < 1:
            raise ValueError(
                f"learner.adv_conditioned.positive_fraction={self.positive_fraction} must be in (0, 1)"
            )
        if not 0 <= self.cond_dropout < 1:
            raise ValueError(f"learner.adv_conditioned.cond_dropout={self.cond_dropout} must be in [0, 1)")


def condition_indicator(
    batch: ReplayBatch, cfg: AdvConditionedConfig, human_credit: str, rng: np.random.Generator
) -> np.ndarray:
    """int64 [B] in {COND_NEGATIVE, COND_POSITIVE, COND_DROPPED}."""
    positive = top_fraction_indicator(batch.adv, batch.task, cfg.positive_fraction)
    if human_credit == "positive":
        positive |= batch.human
    cond = np.where(positive, COND_POSITIVE, COND_NEGATIVE)
    cond[rng.random(len(cond)) < cfg.cond_dropout] = COND_DROPPED
    return cond.astype(np.int64)


def with_cond_input(vla: VLA, guidance: float) -> VLA:
    """A copy of ``vla`` whose expert takes the advantage indicator (zero-initialised: same actions at first)."""
    cfg = dataclasses.replace(
        vla.cfg, expert=dataclasses.replace(vla.cfg.expert, use_cond=True), act_guidance=guidance
    )
    new = extended_policy(vla, cfg, "expert.cond_embed", "the indicator input")
    torch.nn.init.zeros_(new.expert.cond_embed.weight)  # no indicator effect until trained
    return new


class AdvConditioned(UpdateRule):
    """See the module docstring."""

    name = "adv_conditioned"
    uses = ("adv_conditioned",)

    def prepare(self, vla):
        return vla if vla.cfg.expert.use_cond else with_cond_input(vla, self.cfg.adv_conditioned.guidance)

    def loss(self, vla, prefix, batch, rng, step):
        c = condition_indicator(batch, self.cfg.adv_conditioned, self.cfg.human_credit, rng)
        loss, metrics = flow_matching_loss(vla, prefix, batch, cond=c)
        return loss, metrics | {"learner/positive_frac": float((c == COND_POSITIVE).mean())}
