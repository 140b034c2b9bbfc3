"""What every update rule is: its loss on one batch, what it trains, what replay offers it.

A rule is a small stateful object the learner builds from its config (``make_rule(cfg)``)::

    rule = make_rule(cfg)                       # cfg.mode names it; its settings: cfg.<mode>
    vla = rule.prepare(vla)                     # extra inputs or nets it needs (zero-initialised)
    rule.start(vla, shipped)                    # references it keeps (fpo: the shipped head)
    loss, metrics = rule.loss(vla, prefix, batch, rng, step)
    rule.before_publish(vla, shipped); ...publish...; rule.after_publish(shipped)

``loss`` is pure given its inputs and the rule's references: the learner owns the optimizer,
checkpoints and publishing. Each rule lives in its own module beside this one, with its
config dataclass and its known-answer tests (tests/unit/test_rule_<name>.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor

from rlpost.policy import VLA, PolicyConfig, Prefix
from rlpost.schema import SchemaError

if TYPE_CHECKING:
    from learner.config import LearnerConfig
    from learner.replay import ReplayBatch

Metrics = dict[str, float]


class UpdateRule:
    """The base of every rule; see the module docstring. Subclasses set ``name`` and ``loss``."""

    name: ClassVar[str]
    needs_labels: ClassVar[bool] = True  # it ranks samples by advantage (needs reward labels)
    successes_only: ClassVar[bool] = False  # replay offers only successful practice episodes
    uses: ClassVar[tuple[str, ...]] = ()  # the config groups (``learner.<group>``) it reads

    def __init__(self, cfg: LearnerConfig) -> None:
        self.cfg = cfg

    @classmethod
    def check(cls, cfg: LearnerConfig) -> None:
        """Refuse settings this rule cannot run with (a sentence naming the setting)."""

    def prepare(self, vla: VLA) -> VLA:
        """The policy this rule trains: ``vla`` itself, or a copy with what the rule adds."""
        return vla

    def start(self, vla: VLA, shipped: VLA) -> None:
        """Called once the learner holds its policy and the one it ships."""

    def trainable(self, vla: VLA) -> list[torch.nn.Parameter]:
        """The parameters this rule updates (the head's by default)."""
        return vla.head_parameters()

    def loss(
        self, vla: VLA, prefix: Prefix, batch: ReplayBatch, rng: np.random.Generator, step: int
    ) -> tuple[Tensor, Metrics]:
        raise NotImplementedError

    def before_publish(self, vla: VLA, shipped: VLA) -> None:
        """Called before a head is checkpointed and published."""

    def after_publish(self, shipped: VLA) -> None:
        """Called after a head was published (the robots will practise with it)."""


def check_batch(batch: ReplayBatch, needs_labels: bool) -> None:
    """Refuse a batch with NaN/Inf where the loss would read it, naming the (episode, t) keys.

    Raises:
        SchemaError: NaN/Inf in the states, actions or (when ``needs_labels``) advantages.
    """
    for name, arr in (("state", batch.state), ("actions", batch.actions)):
        if not np.all(np.isfinite(arr)):
            rows = np.flatnonzero(~np.isfinite(arr).reshape(len(arr), -1).all(1))
            bad = sorted({batch.keys[i] for i in rows})
            raise SchemaError(f"learner batch: {name} contains NaN/Inf at (episode, t) {bad[:3]}")
    if needs_labels and not np.all(np.isfinite(batch.adv)):
        bad = [batch.keys[i] for i in np.flatnonzero(~np.isfinite(batch.adv))]
        raise SchemaError(f"learner batch: advantage is NaN/Inf at (episode, t) {bad[:3]} (labels missing?)")


def advantage_stats(batch: ReplayBatch) -> Metrics:
    """Mean raw advantage by where the step came from: demo / human / autonomous."""
    out = {}
    groups = {
        "demo": batch.source == "demo",
        "human": batch.human & (batch.source != "demo"),
        "autonomous": ~batch.human & (batch.source != "demo"),
    }
    for name, m in groups.items():
        if m.any() and np.isfinite(batch.adv[m]).all():
            out[f"learner/adv_mean/{name}"] = float(batch.adv[m].mean())
        out[f"learner/frac/{name}"] = float(m.mean())
    return out


def flow_matching_loss(
    vla: VLA,
    prefix: Prefix,
    batch: ReplayBatch,
    weights: np.ndarray | None = None,
    cond: np.ndarray | None = None,
) -> tuple[Tensor, Metrics]:
    """mean_b w_b · ‖v_θ(x_τ, τ | o_b) − (ε − a_b)‖² over the batch's valid chunk positions."""
    per_sample = vla.flow_loss(
        prefix,
        batch.state,
        batch.actions,
        weights=None if weights is None else torch.from_numpy(weights),
        cond=None if cond is None else torch.from_numpy(cond),
        action_mask=torch.from_numpy(batch.action_mask),
    )
    loss = per_sample.mean()
    return loss, {"learner/loss": float(loss.detach())}


def extended_policy(vla: VLA, cfg: PolicyConfig, added: str, what: str) -> VLA:
    """A copy of ``vla`` built from ``cfg`` with ``vla``'s weights; only parameters under ``added``
    may be new (zero-initialised by the policy, so the copy acts as ``vla`` at first).

    Raises:
        RuntimeError: the new config changed more than ``what`` (other keys missing or unexpected).
    """
    new = VLA(cfg, vla.backbone)
    missing, unexpected = new.load_state_dict(vla.state_dict(), strict=False)
    if unexpected or any(not k.startswith(added) for k in missing):
        raise RuntimeError(f"adding {what} changed more than it should: {missing}, {unexpected}")
    new.head_version = vla.head_version
    return new
