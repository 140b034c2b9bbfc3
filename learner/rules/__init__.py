"""The learner's update rules, one module each, and the registry the learner, compare and the CLI read.

    awfm             advantage-weighted flow matching (the practice default)       awfm.py
    takeovers        awfm without advantages: a person's steps at the top weight   takeovers.py
    bc_all, curated  imitation of every step / of demos and the policy's successes imitation.py
    adv_conditioned  advantage-conditioned flow matching with guidance            adv_conditioned.py
    steer            noise-space steering net by AWR onto inverted noise          steer.py
    steer_distill    steer, then distil it into the expert before each publish    steer_distill.py
    fpo              flow policy optimisation                                      fpo.py

A new rule is a subclass of :class:`UpdateRule` in its own module, listed in ``RULES``; its
settings are a dataclass under ``learner.<name>`` in :class:`learner.config.LearnerConfig`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from learner.rules.adv_conditioned import AdvConditioned
from learner.rules.awfm import AWFM
from learner.rules.base import Metrics, UpdateRule, advantage_stats, check_batch
from learner.rules.fpo import FPO
from learner.rules.imitation import BCAll, Curated
from learner.rules.steer import Steer
from learner.rules.steer_distill import SteerDistill
from learner.rules.takeovers import Takeovers
from rlpost.names import unknown_name_error
from rlpost.policy import VLA, Prefix

if TYPE_CHECKING:
    from learner.replay import ReplayBatch

RULES: dict[str, type[UpdateRule]] = {
    r.name: r for r in (AWFM, AdvConditioned, Curated, BCAll, Takeovers, Steer, SteerDistill, FPO)
}


def rule_class(name: str) -> type[UpdateRule]:
    """The rule registered as ``name``; an unknown name suggests the nearest one."""
    if name not in RULES:
        raise unknown_name_error("learner.mode", name, tuple(RULES))
    return RULES[name]


def make_rule(cfg) -> UpdateRule:
    """The rule ``cfg.mode`` names, built with ``cfg`` (a :class:`learner.config.LearnerConfig`)."""
    return rule_class(cfg.mode)(cfg)


def batch_loss(
    rule: UpdateRule, vla: VLA, prefix: Prefix, batch: ReplayBatch, rng: np.random.Generator, step: int
) -> tuple[Tensor, Metrics]:
    """``rule``'s loss on one batch, after the checks every rule needs, with the batch's advantage stats.

    Raises:
        SchemaError: NaN/Inf in the batch's states, actions or (for rules that use them) advantages.
    """
    check_batch(batch, rule.needs_labels)
    metrics = advantage_stats(batch)
    loss, m = rule.loss(vla, prefix, batch, rng, step)
    return loss, metrics | m


__all__ = ["RULES", "UpdateRule", "batch_loss", "make_rule", "rule_class"]
