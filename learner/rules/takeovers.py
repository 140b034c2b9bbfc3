"""takeovers: awfm with Â = 0, the control that separates what a person's corrections give from
what advantages add: a person's steps get weight w_max, every other step 1 (renormalised to mean 1).
"""

from __future__ import annotations

import numpy as np

from learner.advantages import advantage_weights, effective_sample_size
from learner.rules.base import UpdateRule, flow_matching_loss


class Takeovers(UpdateRule):
    """See the module docstring."""

    name = "takeovers"
    needs_labels = False

    def loss(self, vla, prefix, batch, rng, step):
        w, _, _ = advantage_weights(
            np.zeros(len(batch.human), np.float32), self.cfg.beta, self.cfg.w_max, batch.human
        )
        loss, metrics = flow_matching_loss(vla, prefix, batch, weights=w)
        return loss, metrics | {"learner/ess": effective_sample_size(w)}
