"""A hand-built finished episode, for the training-sample and subgoal tests."""

from __future__ import annotations

import numpy as np

from rlpost.data.episode_files import Episode, SampledChunks
from rlpost.schema import EpisodeMeta


def hand_built_episode(eid: str, t: int, a_dim: int = 2, cams=("top",)) -> Episode:
    """A finished demo of ``t`` steps with counting actions, constant images per camera, odd steps a person's."""
    meta = EpisodeMeta(
        episode_id=eid, task="tabletop", instruction=f"do {eid}", robot_id="r", session_id="s", source="demo"
    )
    action = np.arange(t * a_dim, dtype=np.float32).reshape(t, a_dim)
    return Episode(
        meta=meta,
        images={c: np.full((t, 8, 8, 3), i, np.uint8) for i, c in enumerate(cams)},
        state=np.arange(t, dtype=np.float32)[:, None].repeat(3, 1),
        action=action,
        policy_action=np.full((t, a_dim), np.nan, np.float32),
        intervention=np.arange(t) % 2 == 0,
        policy_version=np.full(t, -1, np.int64),
        t_ns=np.arange(t, dtype=np.int64),
        frame_index=np.arange(t, dtype=np.int64),
        reward=np.zeros(t, np.float32),
        chunk_start=np.full(t, -1, np.int64),
        chunks=SampledChunks.empty(a_dim),
    )
