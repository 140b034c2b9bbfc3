"""steer: noise-space steering of a fixed expert (DSRL-style), trained by advantage-weighted regression.

L = mean_b w_b · ‖μ_φ(o_b) − clip(z_b)‖²,  w as in awfm
z_b = the noise the fixed expert turns into the recorded chunk (Euler inversion of the
flow), μ_φ the steering net's noise mean, bounded by ``learner.steer.bound``. The expert is
not trained; the steering net ships with the head.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from learner.rules.awfm import batch_weights
from learner.rules.base import UpdateRule, extended_policy
from rlpost.names import unknown_name_error
from rlpost.policy import VLA

NOISE_CLIP = 3.0  # inverted noise beyond 3 sigma is an inversion artefact, not a choice to imitate
STEER_TARGETS = ("executed", "chunk")


@dataclass
class SteerConfig:
    """The steering net's settings (steer and steer_distill)."""

    bound: float = 1.0  # largest |noise mean| the net may pick (standard-normal units)
    # which of a replay chunk's positions regress onto their inverted noise. chunk: all H;
    # executed: the first `execute` (the later ones came from the next chunk, and their inverted
    # noise is further from the noise the head used than a fresh draw). executed measured worse
    # on the route task without takeovers (README), so chunk stays the default.
    target: str = "chunk"

    def __post_init__(self) -> None:
        if self.target not in STEER_TARGETS:
            raise unknown_name_error("learner.steer.target", self.target, STEER_TARGETS)
        if not 0 < self.bound <= 5:
            raise ValueError(f"learner.steer.bound={self.bound} must be in (0, 5] (standard-normal units)")


def with_steering(vla: VLA, bound: float) -> VLA:
    """A copy of ``vla`` with a noise-space steering net (its last layer zero: same actions at first)."""
    cfg = dataclasses.replace(vla.cfg, steer_bound=bound)
    return extended_policy(vla, cfg, "steer.", "the steering net")


def steer_loss(vla, prefix, batch, cfg) -> tuple[torch.Tensor, dict[str, float]]:
    """AWR of the steering net's noise mean onto the (clipped) noise behind each recorded chunk
    (its executed positions, or all of them: ``cfg.steer.target``)."""
    w, metrics = batch_weights(batch, cfg.beta, cfg.w_max, cfg.human_credit)
    z = vla.invert(prefix, batch.state, batch.actions).clamp(-NOISE_CLIP, NOISE_CLIP)
    err = (vla.steer_mean(prefix, batch.state) - z).pow(2).mean(-1)  # [B, H]
    m = torch.from_numpy(batch.action_mask).to(err.dtype)
    if cfg.steer.target == "executed":
        m[:, cfg.execute :] = 0.0
    per_sample = (err * m).sum(-1) / m.sum(-1).clamp(min=1.0)
    loss = (per_sample * torch.from_numpy(w)).mean()
    metrics["learner/loss"] = float(loss.detach())
    metrics["learner/steer_abs_mean"] = float(z.abs().mean())
    return loss, metrics


class Steer(UpdateRule):
    """See the module docstring."""

    name = "steer"
    uses = ("steer",)

    def prepare(self, vla):
        return vla if vla.steer is not None else with_steering(vla, self.cfg.steer.bound)

    def trainable(self, vla):
        assert vla.steer is not None
        return list(vla.steer.parameters())  # DSRL leaves the expert as pretrained

    def loss(self, vla, prefix, batch, rng, step):
        return steer_loss(vla, prefix, batch, self.cfg)
