"""The learner's update rules on one batch: advantage-weighted flow matching and its ablations.

    awfm             L = mean_b w_b · ‖v_θ(x_τ, τ | o_b) − (ε − a_b)‖²,  w = min(exp(Â/β), w_max) / mean
                     with Â the advantage standardised per task (AWR, Peng et al. 2019; REWARD.md)
    adv_conditioned  L = mean_b ‖v_θ(x_τ, τ | o_b, I_b) − (ε − a_b)‖², I_b = 1 for the top fraction of
                     Â per task (RECAP, pi*0.6), dropped with probability p for classifier-free guidance
    curated, bc_all  L = mean_b ‖v_θ − (ε − a_b)‖²; what differs is which samples replay offers
    steer            L = mean_b w_b · ‖μ_φ(o_b) − clip(z_b)‖², w as in awfm; z_b = the noise the fixed expert
                     turns into the recorded chunk (Euler inversion of the flow), μ_φ the steering
                     net's noise mean (DSRL-style noise-space steering; the expert is not trained)
    steer_distill    the steer loss; in the distillation phase (``teacher`` given) instead
                     L = mean_b ‖v_θ(x_τ, τ | o_b) − (ε − ã_b)‖², ã_b ~ the frozen steered policy at o_b:
                     the expert learns to draw from plain noise what the steered policy draws
    fpo              L = −mean_b min(r_b Â_b, clip(r_b, 1 ± c) Â_b), r_b = exp(L̂_old(a_b) − L̂_θ(a_b)) with
                     L̂ the flow-matching loss on the same (τ, ε) draws: flow policy optimisation
                     (McAllister et al. 2025), head only; a person's steps get the top advantage
    takeovers        awfm with Â = 0: a person's steps get w_max, all others 1 (renormalised). The
                     control that separates what the human's corrections give from what advantages add

A person's actions (intervention steps) get the top weight / the positive indicator when
``human_credit = "positive"``. ``batch_loss`` is pure given its inputs: the loop that calls it
owns the optimizer, checkpoints and publishing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from learner.advantages import (
    advantage_weights,
    effective_sample_size,
    standardize_per_group,
    top_fraction_indicator,
)
from learner.config import LearnerConfig
from learner.replay import ReplayBatch
from rlpost.policy import VLA, Prefix
from rlpost.policy.action_expert import COND_DROPPED, COND_NEGATIVE, COND_POSITIVE
from rlpost.policy.flow import noisy_actions, sample_time
from rlpost.schema import SchemaError

NOISE_CLIP = 3.0  # inverted noise beyond 3 sigma is an inversion artefact, not a choice to imitate


def batch_weights(batch: ReplayBatch, cfg: LearnerConfig) -> tuple[np.ndarray, dict[str, float]]:
    """Per-sample AWR weights (mean 1) and their statistics."""
    adv = standardize_per_group(batch.adv, batch.task)
    # RECAP: corrections by a person count as good actions
    top = batch.human if cfg.human_credit == "positive" else None
    w, mean_raw, clipped = advantage_weights(adv, cfg.beta, cfg.w_max, top)
    stats = {
        "learner/weight_mean_raw": mean_raw,
        "learner/weight_max": float(w.max()),
        "learner/ess": effective_sample_size(w),
        "learner/clipped_frac": clipped,
    }
    return w, stats


def condition_indicator(batch: ReplayBatch, cfg: LearnerConfig, rng: np.random.Generator) -> np.ndarray:
    """int64 [B] in {COND_NEGATIVE, COND_POSITIVE, COND_DROPPED} for adv_conditioned training."""
    positive = top_fraction_indicator(batch.adv, batch.task, cfg.positive_fraction)
    if cfg.human_credit == "positive":
        positive |= batch.human
    cond = np.where(positive, COND_POSITIVE, COND_NEGATIVE)
    cond[rng.random(len(cond)) < cfg.cond_dropout] = COND_DROPPED
    return cond.astype(np.int64)


def advantage_stats(batch: ReplayBatch) -> dict[str, float]:
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


def fpo_loss(
    vla: VLA,
    old_expert: torch.nn.Module,
    prefix: Prefix,
    batch: ReplayBatch,
    cfg: LearnerConfig,
    rng: np.random.Generator,
) -> tuple[Tensor, dict[str, float]]:
    """The clipped FPO surrogate of one batch (see the module docstring)."""
    adv = standardize_per_group(batch.adv, batch.task)
    if cfg.human_credit == "positive" and batch.human.any():
        adv = np.where(batch.human, max(float(adv.max()), 1.0), adv).astype(np.float32)
    m, b = cfg.fpo_samples, prefix.batch_size
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
    surrogate = torch.min(ratio * adv_t, ratio.clamp(1 - cfg.fpo_clip, 1 + cfg.fpo_clip) * adv_t)
    loss = -surrogate.mean()
    clipped = ((ratio - 1).abs() > cfg.fpo_clip).float().mean()
    return loss, {
        "learner/loss": float(loss.detach()),
        "learner/fpo_ratio_mean": float(ratio.detach().mean()),
        "learner/fpo_clipped_frac": float(clipped),
        "learner/flow_loss": float(new.detach().mean()),
    }


def steer_loss(
    vla: VLA, prefix: Prefix, batch: ReplayBatch, cfg: LearnerConfig
) -> tuple[Tensor, dict[str, float]]:
    """AWR of the steering net's noise mean onto the (clipped) noise behind each recorded chunk
    (its executed positions, or all of them: ``cfg.steer_target``)."""
    w, metrics = batch_weights(batch, cfg)
    z = vla.invert(prefix, batch.state, batch.actions).clamp(-NOISE_CLIP, NOISE_CLIP)
    err = (vla.steer_mean(prefix, batch.state) - z).pow(2).mean(-1)  # [B, H]
    m = torch.from_numpy(batch.action_mask).to(err.dtype)
    if cfg.steer_target == "executed":
        m[:, cfg.execute :] = 0.0
    per_sample = (err * m).sum(-1) / m.sum(-1).clamp(min=1.0)
    loss = (per_sample * torch.from_numpy(w)).mean()
    metrics["learner/loss"] = float(loss.detach())
    metrics["learner/steer_abs_mean"] = float(z.abs().mean())
    return loss, metrics


def distill_loss(
    vla: VLA, teacher: VLA, prefix: Prefix, batch: ReplayBatch, rng: np.random.Generator
) -> tuple[Tensor, dict[str, float]]:
    """Flow matching of ``vla``'s expert onto chunks the frozen steered ``teacher`` samples at the
    batch's observations (whole chunks: the teacher's are never cut by an episode's end)."""
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    with torch.no_grad():
        target = teacher.sample(prefix, batch.state, generator=gen)
    loss = vla.flow_loss(prefix, batch.state, target, generator=gen).mean()
    return loss, {"learner/loss": float(loss.detach()), "learner/distill_loss": float(loss.detach())}


def batch_loss(
    vla: VLA,
    prefix: Prefix,
    batch: ReplayBatch,
    cfg: LearnerConfig,
    rng: np.random.Generator,
    old_expert: torch.nn.Module | None = None,
    teacher: VLA | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The loss of one batch under ``cfg.mode`` and its metrics (``old_expert``: fpo's reference
    head; ``teacher``: steer_distill's frozen steered policy, given in its distillation phase).

    Raises:
        SchemaError: NaN/Inf in the batch's states, actions or (for modes that use them) advantages.
    """
    for name, arr in (("state", batch.state), ("actions", batch.actions)):
        if not np.all(np.isfinite(arr)):
            bad = sorted(
                {batch.keys[i] for i in np.flatnonzero(~np.isfinite(arr).reshape(len(arr), -1).all(1))}
            )
            raise SchemaError(f"learner batch: {name} contains NaN/Inf at (episode, t) {bad[:3]}")
    if cfg.needs_labels and not np.all(np.isfinite(batch.adv)):
        bad = [batch.keys[i] for i in np.flatnonzero(~np.isfinite(batch.adv))]
        raise SchemaError(f"learner batch: advantage is NaN/Inf at (episode, t) {bad[:3]} (labels missing?)")
    metrics = advantage_stats(batch)
    mask = torch.from_numpy(batch.action_mask)
    weights = cond = None
    if cfg.mode == "awfm":
        w, stats = batch_weights(batch, cfg)
        weights = torch.from_numpy(w)
        metrics.update(stats)
    elif cfg.mode == "takeovers":
        w, _, _ = advantage_weights(np.zeros(len(batch.human), np.float32), cfg.beta, cfg.w_max, batch.human)
        weights = torch.from_numpy(w)
        metrics["learner/ess"] = effective_sample_size(w)
    elif cfg.mode == "fpo":
        if old_expert is None:
            raise ValueError("learner mode fpo needs the reference (last published) expert")
        loss, stats = fpo_loss(vla, old_expert, prefix, batch, cfg, rng)
        metrics.update(stats)
        return loss, metrics
    elif cfg.mode == "steer_distill" and teacher is not None:
        loss, stats = distill_loss(vla, teacher, prefix, batch, rng)
        metrics.update(stats)
        return loss, metrics
    elif cfg.mode in ("steer", "steer_distill"):
        loss, stats = steer_loss(vla, prefix, batch, cfg)
        metrics.update(stats)
        return loss, metrics
    elif cfg.mode == "adv_conditioned":
        c = condition_indicator(batch, cfg, rng)
        cond = torch.from_numpy(c)
        metrics["learner/positive_frac"] = float((c == COND_POSITIVE).mean())
    per_sample = vla.flow_loss(
        prefix, batch.state, batch.actions, weights=weights, cond=cond, action_mask=mask
    )
    loss = per_sample.mean()
    metrics["learner/loss"] = float(loss.detach())
    return loss, metrics
