"""awfm: advantage-weighted flow matching of the head (AWR, Peng et al. 2019, on flow matching).

L = mean_b w_b · ‖v_θ(x_τ, τ | o_b) − (ε − a_b)‖²,   w = min(exp(Â/β), w_max) / mean
Â = the advantage standardised per task; a person's steps get the top weight when
``learner.human_credit = positive`` (RECAP's rule: corrections count as good actions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from learner.advantages import advantage_weights, effective_sample_size, standardize_per_group
from learner.rules.base import Metrics, UpdateRule, flow_matching_loss

if TYPE_CHECKING:
    from learner.replay import ReplayBatch


def batch_weights(
    batch: ReplayBatch, beta: float, w_max: float, human_credit: str
) -> tuple[np.ndarray, Metrics]:
    """Per-sample AWR weights (mean 1) and their statistics."""
    adv = standardize_per_group(batch.adv, batch.task)
    top = batch.human if human_credit == "positive" else None
    w, mean_raw, clipped = advantage_weights(adv, beta, w_max, top)
    stats = {
        "learner/weight_mean_raw": mean_raw,
        "learner/weight_max": float(w.max()),
        "learner/ess": effective_sample_size(w),
        "learner/clipped_frac": clipped,
    }
    return w, stats


class AWFM(UpdateRule):
    """See the module docstring."""

    name = "awfm"

    def loss(self, vla, prefix, batch, rng, step):
        w, metrics = batch_weights(batch, self.cfg.beta, self.cfg.w_max, self.cfg.human_credit)
        loss, m = flow_matching_loss(vla, prefix, batch, weights=w)
        return loss, metrics | m
