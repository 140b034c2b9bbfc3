"""What a session starts from: demonstrations copied into its store, and a reward model.

:func:`import_episodes` copies a store of demonstrations into the session store (once);
:func:`train_reward` trains the reward model its labeler uses, so pipelines in core (the
demo) can do both without importing reward_models/ themselves.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reward_models.config import RewardTrainConfig
from reward_models.train import TrainResult, train_reward_model
from rlpost.data.episode_store import EpisodeStore
from rlpost.schema import StepRecord


def import_episodes(src: str | Path, dst: EpisodeStore, task: str = "") -> int:
    """Copy every finished episode of ``src`` (of ``task``, if given) into ``dst`` once (same ids,
    meta and outcome).

    Demonstrations are imported into the session store so replay can mix them with
    practice; an id already in ``dst`` is left alone, so importing twice copies nothing.

    Returns:
        How many episodes were copied now.

    Raises:
        StoreError: ``src`` is not an episode store, or one of its files is corrupt (names it).
    """
    have = {m.episode_id for m in dst.episodes()}
    copied = 0
    with EpisodeStore.open(src, create=False, recover=False) as s:
        for m in s.episodes(task=task or None):
            if m.episode_id in have:
                continue
            ep = s.read_episode(m.episode_id)
            begin = dataclasses.replace(
                m, outcome="running", marked_by="none", length=0, episode_index=-1, duration_s=0.0
            )
            dst.begin(begin)
            for t in range(len(ep.action)):
                dst.append(
                    m.episode_id,
                    StepRecord(
                        images={c: ep.images[c][t] for c in ep.images},
                        state=ep.state[t],
                        action=ep.action[t],
                        policy_action=ep.policy_action[t],
                        intervention=bool(ep.intervention[t]),
                        policy_version=int(ep.policy_version[t]),
                        t_ns=int(ep.t_ns[t]),
                        frame_index=int(ep.frame_index[t]),
                        reward=float(ep.reward[t]),
                    ),
                )
            dst.finish(m.episode_id, m.outcome, m.marked_by)
            copied += 1
    return copied


def train_reward(cfg: RewardTrainConfig) -> TrainResult:
    """Train a reward model (reward_models.train); here so pipelines in core can call it."""
    return train_reward_model(cfg)
