"""The imitation controls: plain flow matching, L = mean_b ‖v_θ − (ε − a_b)‖²; what differs is
which samples replay offers.

    bc_all   every stored step (demonstrations and all practice): continued imitation
    curated  demonstrations and the successful practice episodes only, the fastest
             ``learner.curated.fastest`` of them per task (filtered self-imitation)
"""

from __future__ import annotations

from dataclasses import dataclass

from learner.rules.base import UpdateRule, flow_matching_loss


@dataclass
class CuratedConfig:
    """curated: which successful practice episodes replay keeps."""

    fastest: float = 1.0  # keep this fastest fraction of the successes, per task

    def __post_init__(self) -> None:
        if not 0 < self.fastest <= 1:
            raise ValueError(f"learner.curated.fastest={self.fastest} must be in (0, 1]")


class BCAll(UpdateRule):
    """Continued imitation of every stored step."""

    name = "bc_all"
    needs_labels = False

    def loss(self, vla, prefix, batch, rng, step):
        return flow_matching_loss(vla, prefix, batch)


class Curated(BCAll):
    """Imitation of demonstrations and the policy's own successes."""

    name = "curated"
    successes_only = True
    uses = ("curated",)
