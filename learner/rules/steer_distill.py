"""steer_distill: steer, then distil the steered policy into the expert before each publish.

Each publish period trains the steering net (the steer loss) for its first updates and, for
the last ``learner.steer_distill.fraction`` of them, distils:

    L = mean_b ‖v_θ(x_τ, τ | o_b) − (ε − ã_b)‖²,  ã_b ~ the frozen steered policy at o_b

so the expert learns to draw from plain noise what the steered policy draws. What ships acts
from plain noise: the steering net's last layer is zeroed at each publish.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from learner.rules.base import UpdateRule
from learner.rules.steer import Steer, steer_loss
from rlpost.policy import VLA


@dataclass
class SteerDistillConfig:
    """steer_distill's settings."""

    fraction: float = 0.5  # share of each publish period's updates that distil

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ValueError(f"learner.steer_distill.fraction={self.fraction} must be in (0, 1)")


def distill_loss(vla: VLA, teacher: VLA, prefix, batch, rng) -> tuple[torch.Tensor, dict[str, float]]:
    """Flow matching of ``vla``'s expert onto chunks the frozen steered ``teacher`` samples at the
    batch's observations (whole chunks: the teacher's are never cut by an episode's end)."""
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    with torch.no_grad():
        target = teacher.sample(prefix, batch.state, generator=gen)
    loss = vla.flow_loss(prefix, batch.state, target, generator=gen).mean()
    return loss, {"learner/loss": float(loss.detach()), "learner/distill_loss": float(loss.detach())}


class SteerDistill(Steer):
    """See the module docstring."""

    name = "steer_distill"
    uses = ("steer", "steer_distill")

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        # the frozen steered policy, snapshot when a period's distillation phase begins (after a
        # crash mid-phase, the resumed state is snapshot again: a slightly later teacher)
        self.teacher: VLA | None = None

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.publish_every < 2:
            raise ValueError(
                "learner mode steer_distill needs publish_every >= 2 (steer, then distil, per period)"
            )

    def distill_updates(self) -> int:
        """The number of distillation updates that end each publish period (>= 1)."""
        p = self.cfg.publish_every
        return max(1, min(p - 1, round(p * self.cfg.steer_distill.fraction)))

    def distilling(self, step: int) -> bool:
        """Whether update ``step`` is in the distillation phase that ends each publish period."""
        p = self.cfg.publish_every
        return step % p >= p - self.distill_updates()

    def trainable(self, vla):
        return UpdateRule.trainable(self, vla)  # each phase's loss reaches only its own part

    def loss(self, vla, prefix, batch, rng, step):
        if not self.distilling(step):
            return steer_loss(vla, prefix, batch, self.cfg)
        if self.teacher is None:  # the steered policy as it stands; the backbone is shared, not copied
            self.teacher = copy.deepcopy(vla, memo={id(vla.backbone): vla.backbone})
            self.teacher.requires_grad_(False).eval()
        return distill_loss(vla, self.teacher, prefix, batch, rng)

    def before_publish(self, vla, shipped):
        assert vla.steer is not None and shipped.steer is not None
        vla.steer.zero_output()
        shipped.steer.zero_output()  # the average's too (the same net when there is none)
        self.teacher = None
