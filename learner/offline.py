"""`rlpost learn`: the learner run offline on a store (researchers, the comparison harness)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from learner.config import LearnerConfig
from learner.learner import Learner
from rlpost.data.episode_store import EpisodeStore
from rlpost.metrics import LoggerConfig, MetricsLogger

log = logging.getLogger(__name__)


@dataclass
class LearnConfig:
    """Settings of `rlpost learn`."""

    store: str = "runs/practice/store"
    policy_checkpoint: str = "runs/pretrain/policy"  # the VLA to start from (`policy=` on the CLI)
    out: str = "runs/learn"  # run directory (resumes if it holds a checkpoint)
    updates: int = 1000  # total updates of the run (a resumed run does the rest)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    seed: int = 0
    threads: int = 0
    progress: bool = True
    logger: LoggerConfig = field(default_factory=LoggerConfig)


@dataclass
class LearnResult:
    """What an offline learning run produced."""

    run_dir: Path
    updates: int
    version: int  # latest published head version
    loss: float  # last update's loss
    ess: float  # last update's effective sample size (awfm), NaN otherwise
    cache_hit_rate: float


def run_learn(cfg: LearnConfig) -> LearnResult:
    """Train the head on the store for ``cfg.updates`` updates, publishing versions as it goes."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    metrics = MetricsLogger(cfg.logger, cfg.out, f"learn-{cfg.learner.mode}", dataclasses.asdict(cfg))
    try:
        with EpisodeStore.open(cfg.store, create=False) as store:
            learner = Learner(
                cfg.learner, store, cfg.policy_checkpoint, cfg.out, metrics=metrics, seed=cfg.seed
            )
            todo = max(0, cfg.updates - learner.step)
            with tqdm(
                total=cfg.updates,
                initial=learner.step,
                desc=f"learn {cfg.learner.mode}",
                disable=not cfg.progress,
            ) as bar:
                last = learner.train(todo, progress=bar)
            if learner.step % cfg.learner.publish_every:
                learner.checkpoint_and_publish()  # the final head ships too
    finally:
        metrics.close()
    return LearnResult(
        run_dir=Path(cfg.out),
        updates=learner.step,
        version=learner.version,
        loss=last.get("learner/loss", float("nan")),
        ess=last.get("learner/ess", float("nan")),
        cache_hit_rate=learner.cache.stats.hit_rate,
    )
