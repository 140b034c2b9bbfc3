"""An exponential moving average of the head's weights: the head that ships when ``learner.ema_decay > 0``.

    average = HeadAverage(learner.vla, decay=0.995)
    average.update(learner.vla)   # after every optimizer step
    average.vla                   # acts, is evaluated, published and checkpointed

Why: at a few hundred updates on a few dozen new episodes per round, the head the
optimizer last stopped at swings ±0.1–0.2 success from round to round on the route
task (README, the averaged-vs-latest comparison), more than any difference between update rules. Averaging the
weights over the last ~1/(1 − decay) updates ships the middle of that wander instead
of one end of it (Polyak averaging; EMA heads are the norm for diffusion and flow
policies). The average starts at the weights the learner starts from, so a fresh
run's shipped head moves away from the pretrained one gradually.

The copy shares the frozen backbone with the live policy (no second backbone in memory).
"""

from __future__ import annotations

import copy

import torch

from rlpost.policy import VLA


class HeadAverage:
    """Polyak average of ``vla``'s head parameters (expert and steering net); buffers are copied."""

    def __init__(self, vla: VLA, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"learner.ema_decay={decay} must be in (0, 1) for an average (0 turns it off)")
        self.decay = decay
        self.vla = copy.deepcopy(vla, memo={id(vla.backbone): vla.backbone})
        for p in self.vla.head_parameters():
            p.requires_grad_(False)
        self.vla.eval()

    @torch.no_grad()
    def update(self, live: VLA) -> None:
        """Move the average a (1 − decay) step toward ``live``'s head."""
        mine, theirs = self.vla.head_parameters(), live.head_parameters()
        if len(mine) != len(theirs):
            raise RuntimeError(
                f"the head's parameters changed shape: the average has {len(mine)} tensors, the live head {len(theirs)}"
            )
        for avg, cur in zip(mine, theirs, strict=True):
            avg.lerp_(cur.detach(), 1.0 - self.decay)
