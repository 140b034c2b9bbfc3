"""`rlpost label`: per-step labels from a reward model, written into the store beside the raw data.

Each episode gets the label version ``rm-v<N>`` (N: the reward model's version) with the
columns (float32 [T] unless noted):

    progress      expected progress in [0, 1]
    success_prob  calibrated "success now" probability
    value         steps_to_go: expected normalised return in [-1, 0] (REWARD.md);
                  progress_delta: bonus * P(success) - penalty * (1 - P(success)) - progress,
                  the value of the shaped return, since the shaping telescopes to -progress(o_t)
    reward        per the reward definition (RewardDef); NaN when the outcome is not known
    terminal      bool: the step ends a return segment (episode end, the step before a takeover)
    auto_marked   bool: the success step came from the success head, not a mark

Raw episode files are never touched; a new model version adds a new label version.
Episodes without an outcome (still running, or recovered after a disconnect) get
progress, success_prob and value, and reward NaN: they are "not used until the
outcome is known" (REWARD.md) and are counted, not skipped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from reward_models.checkpoint import RewardCheckpoint, load_reward_checkpoint
from reward_models.config import LabelConfig, RewardDef
from reward_models.features import EpisodeFeatures, EpisodePrediction, load_frozen_backbone, predict_clip
from reward_models.targets import ROLE_SUCCESS, ROLE_UNKNOWN, episode_role, step_rewards
from rlpost.data import EpisodeStore
from rlpost.schema import EpisodeMeta

log = logging.getLogger(__name__)


@dataclass
class LabelResult:
    """What one labelling pass wrote."""

    label_version: str
    labelled: list[str] = field(default_factory=list)
    no_outcome: list[str] = field(default_factory=list)  # labelled with reward NaN
    auto_marked: list[str] = field(default_factory=list)
    already_labelled: list[str] = field(default_factory=list)  # left as they were (overwrite=False)


def shaped_rewards(progress: np.ndarray, end: int, success: bool, rd: RewardDef) -> np.ndarray:
    """progress_delta rewards (Ng et al. 1999): r_t = gamma * phi(o_{t+1}) - phi(o_t), phi = 0 at the
    terminal step ``end``, plus ``success_bonus`` / ``-failure_penalty`` there; 0 after it. float32 [T]."""
    n = len(progress)
    phi = np.zeros(n + 1, np.float64)
    phi[: end + 1] = progress[: end + 1]
    phi[end + 1 :] = 0.0  # terminal potential is zero: a failure at high progress is not paid
    r = rd.gamma * phi[1:] - phi[:-1]
    r[end] = -phi[end] + (rd.success_bonus if success else -rd.failure_penalty)
    r[end + 1 :] = 0.0
    return r.astype(np.float32)


def episode_labels(
    meta: EpisodeMeta,
    intervention: np.ndarray,
    pred: EpisodePrediction,
    ckpt: RewardCheckpoint,
    rd: RewardDef,
) -> tuple[dict[str, np.ndarray], str]:
    """Label columns of one episode and its status: "ok", "no_outcome" or "auto_marked"."""
    n = meta.length
    role = episode_role(meta, rd.aborted_is_failure)
    status, end, success = "ok", n - 1, role == ROLE_SUCCESS
    auto = meta.marked_by == "none" and role != ROLE_UNKNOWN
    if auto:  # no mark: the success step comes from the calibrated success head (REWARD.md)
        hits = np.flatnonzero(pred.success_prob >= ckpt.calibration.threshold)
        success, end, status = bool(len(hits)), int(hits[0]) if len(hits) else n - 1, "auto_marked"
    t_max, c_fail = rd.resolved(ckpt.reward.t_max)
    if rd.kind == "steps_to_go":
        r, ends = step_rewards(end + 1, success, intervention[: end + 1], t_max, c_fail)
        reward = np.concatenate([r, np.zeros(n - end - 1, np.float32)])
        terminal = np.concatenate([ends, np.ones(n - end - 1, bool)])
        value = pred.value
    else:
        reward = shaped_rewards(pred.progress, end, success, rd)
        terminal = np.arange(n) >= end
        p = pred.p_success_future
        value = (rd.success_bonus * p - rd.failure_penalty * (1 - p) - pred.progress).astype(np.float32)
    if role == ROLE_UNKNOWN:
        reward, status = np.full(n, np.nan, np.float32), "no_outcome"
    cols = {
        "progress": pred.progress,
        "success_prob": pred.success_prob,
        "value": np.asarray(value, np.float32),
        "reward": reward.astype(np.float32),
        "terminal": terminal.astype(bool),
        "auto_marked": np.full(n, auto, bool),
    }
    return cols, status


class Labeler:
    """Labels finished episodes of one store with one reward-model version (plain class; no Ray)."""

    def __init__(
        self, ckpt: RewardCheckpoint, feats: EpisodeFeatures, reward: RewardDef | None = None
    ) -> None:
        """Args:
        ckpt: the reward model.
        feats: features under the backbone the model was trained on.
        reward: the reward definition; None: the one saved with the model.

        Raises:
            CheckpointError: ``feats`` come from another backbone.
        """
        ckpt.check_backbone(feats.fingerprint)
        self.ckpt, self.feats, self.store = ckpt, feats, feats.store
        self.reward = reward or ckpt.reward

    @classmethod
    def from_config(cls, cfg: LabelConfig) -> Labeler:
        """Load the model and the policy's frozen backbone named by ``cfg``."""
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        ckpt = load_reward_checkpoint(cfg.reward_model)
        store = EpisodeStore.open(cfg.store, create=False)
        feats = EpisodeFeatures(load_frozen_backbone(cfg.policy_checkpoint), store, cfg.cache_dir or None)
        return cls(ckpt, feats, cfg.reward)

    @property
    def label_version(self) -> str:
        return self.ckpt.label_version

    def unlabelled(self, task: str = "") -> list[str]:
        """Finished episodes without this model's label version, in store order."""
        return [
            m.episode_id
            for m in self.store.episodes(task=task or None)
            if self.label_version not in self.store.label_versions(m.episode_id)
        ]

    def predict(self, episode_id: str) -> EpisodePrediction:
        tokens, mask = self.feats.tokens(episode_id)
        state, _ = self.feats.steps(episode_id)
        return predict_clip(self.ckpt.model, tokens, mask, state, self.ckpt.calibration)

    def label(self, episode_ids: Sequence[str], overwrite: bool = False) -> LabelResult:
        """Write labels for ``episode_ids``.

        An episode that already has this version is left untouched (and listed) unless
        ``overwrite``; an empty episode is an error, not a skip.

        Raises:
            StoreError: an unknown episode or a corrupt file (names it).
            ValueError: an episode with no steps.
        """
        res = LabelResult(self.label_version)
        for eid in episode_ids:
            meta = self.store.meta(eid)
            if meta.length == 0:
                raise ValueError(f"episode {eid} has no steps to label")
            if not overwrite and self.label_version in self.store.label_versions(eid):
                res.already_labelled.append(eid)
                continue
            _, intervention = self.feats.steps(eid)
            with torch.no_grad():
                cols, status = episode_labels(meta, intervention, self.predict(eid), self.ckpt, self.reward)
            self.store.write_labels(eid, self.label_version, cols, overwrite=overwrite)
            res.labelled.append(eid)
            if status == "no_outcome":
                res.no_outcome.append(eid)
            elif status == "auto_marked":
                res.auto_marked.append(eid)
        if res.already_labelled:
            log.info(
                "label: %d episodes already had %s (overwrite=False)",
                len(res.already_labelled),
                self.label_version,
            )
        if res.no_outcome:
            log.warning("label: %d episodes have no outcome yet; their reward is NaN", len(res.no_outcome))
        return res


class LabelerActor:
    """Thin shell for a Ray actor (``ray.remote`` is applied in rlpost/session/): labels episodes
    as they finish during a practice session. No math here; see :class:`Labeler`."""

    def __init__(self, cfg: LabelConfig) -> None:
        self.labeler = Labeler.from_config(cfg)
        self.task = cfg.task
        self.total = 0

    def label_new(self) -> list[str]:
        """Label every finished episode that has no labels of this model yet; returns their ids."""
        res = self.labeler.label(self.labeler.unlabelled(self.task))
        self.total += len(res.labelled)
        return res.labelled

    def label_version(self) -> str:
        return self.labeler.label_version

    def stats(self) -> dict[str, int]:
        return {"labelled_total": self.total}
