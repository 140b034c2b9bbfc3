"""The learner side of a session: :class:`LearnerService` (labeler + learner) and its :class:`LearnerTick`.

A plain class, so the session runs it in the driver or wraps it with ``ray.remote`` as an
actor that asks for GPUs (``ray.learner_actor``); a LearnerTick is what crosses back.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np

from learner.learner import Learner
from reward_models.config import LabelConfig
from reward_models.labeler import Labeler
from rlpost.data.episode_store import EpisodeStore
from rlpost.metrics import MetricsLogger
from rlpost.session.config import PracticeConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnerTick:
    """What one learner cycle did (crosses the process boundary when the learner is an actor)."""

    step: int  # learner updates so far (session total)
    version: int  # latest published head version
    updates: int  # updates done in this cycle
    labelled: int  # episodes labelled in this cycle
    seconds: float  # wall time of the updates
    loss: float  # last update's loss (NaN without updates)


class LearnerService:
    """The labeler and the learner of one session (a plain class: in the driver or a Ray actor)."""

    def __init__(self, cfg: PracticeConfig, store_dir: str, run_dir: str, group: str) -> None:
        import torch

        torch.set_num_threads(cfg.threads)
        self.cfg = cfg
        self.store = EpisodeStore.open(store_dir, create=False, recover=False)
        self.metrics = MetricsLogger(
            dataclasses.replace(cfg.logger, group=group), run_dir, f"{group}-learner", dataclasses.asdict(cfg)
        )
        self.labeler: Labeler | None = None
        if cfg.reward_model:
            self.labeler = Labeler.from_config(
                LabelConfig(
                    store=store_dir,
                    reward_model=cfg.reward_model,
                    policy_checkpoint=cfg.policy_checkpoint,
                    progress=False,
                )
            )
        self.learner = Learner(
            cfg.learner, self.store, cfg.policy_checkpoint, run_dir, metrics=self.metrics, seed=cfg.seed
        )
        self.published_at_step = self.learner.step
        self.labelled_total = 0
        self.empty_episodes: set[str] = set()

    def label_new(self) -> int:
        """Label every finished episode without this reward model's labels; returns how many."""
        if self.labeler is None:
            return 0
        ids = []
        for eid in self.labeler.unlabelled(self.cfg.task):
            if self.store.meta(eid).length > 0:
                ids.append(eid)
            elif eid not in self.empty_episodes:
                # An operator's abort, reset or e-stop before the first step leaves an episode
                # with no steps: nothing to label or learn from (replay counts it as pending).
                self.empty_episodes.add(eid)
                log.warning("episode %s has no steps (ended before its first step); not labelled", eid)
        n = len(self.labeler.label(ids).labelled)
        self.labelled_total += n
        return n

    def practice_ready(self) -> bool:
        """Enough practice episodes have finished (``learn_after``) for the first update."""
        return sum(m.source != "demo" for m in self.store.episodes()) >= self.cfg.learn_after

    def train(self, updates: int) -> LearnerTick:
        """Label new episodes, then run up to ``updates`` updates (none while replay is empty)."""
        labelled = self.label_new()
        r = self.learner.replay
        r.refresh()
        if len(r) == 0 or not self.practice_ready():
            return LearnerTick(self.learner.step, self.learner.version, 0, labelled, 0.0, float("nan"))
        t0 = time.perf_counter()
        v0 = self.learner.version
        last = self.learner.train(updates)
        if self.learner.version != v0:
            self.published_at_step = self.learner.step
        return LearnerTick(
            self.learner.step,
            self.learner.version,
            updates,
            labelled,
            time.perf_counter() - t0,
            float(last.get("learner/loss", float("nan"))),
        )

    def version(self) -> int:
        """The latest published head version."""
        return self.learner.version

    def head_state(self) -> dict[str, np.ndarray]:
        """The current head as numpy arrays (what robots load)."""
        return self.learner.shipped.head_state()

    def finish(self) -> LearnerTick:
        """Label what is left, and checkpoint + publish updates made since the last publish."""
        labelled = self.label_new()
        if self.learner.step > self.published_at_step:
            self.learner.checkpoint_and_publish()
            self.published_at_step = self.learner.step
        return LearnerTick(self.learner.step, self.learner.version, 0, labelled, 0.0, float("nan"))

    def close(self) -> None:
        self.metrics.close()
        self.store.close()
