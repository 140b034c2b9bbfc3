"""Training samples cut from stored episodes: the observation at t and the action chunk [t, t+H).

Chunks that run past the episode's end are padded with the last action and masked
out of the loss (``action_mask``), so the last steps of every episode still train.
Episodes are held in memory as stacked arrays (a few hundred simulated episodes at
64 px are ~100-200 MB); sampling is then a numpy gather with no disk access.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlpost.data.episode_files import Episode
from rlpost.data.subgoals import SubgoalSpec, subgoal_targets
from rlpost.schema import SchemaError


@dataclass
class ChunkBatch:
    """B training samples."""

    images: dict[str, np.ndarray]  # camera -> uint8 [B, h, w, 3], observation at t
    state: np.ndarray  # float32 [B, S], at t
    actions: np.ndarray  # float32 [B, H, A], executed actions t .. t+H-1 (padded)
    action_mask: np.ndarray  # bool [B, H], False on padding past the episode's end
    instructions: list[str]  # B
    episode: np.ndarray  # int64 [B], position of the episode in the dataset
    t: np.ndarray  # int64 [B], step within the episode
    intervention: np.ndarray  # bool [B], a person held control at t
    subgoal: np.ndarray | None = None  # float32 [B, K] hindsight subgoal at t (with a SubgoalSpec)


class ChunkDataset:
    """Every step of a set of episodes as a chunk-sample, held in memory."""

    def __init__(self, episodes: Sequence[Episode], horizon: int, subgoal: SubgoalSpec | None = None) -> None:
        if not episodes:
            raise SchemaError("ChunkDataset: no episodes (is the store empty, or the filter too strict?)")
        self.episodes = list(episodes)
        self.horizon = horizon
        first = self.episodes[0]
        self.cameras = tuple(sorted(first.images))
        for ep in self.episodes:
            where = f"ChunkDataset: episode {ep.meta.episode_id}"
            if tuple(sorted(ep.images)) != self.cameras:
                raise SchemaError(
                    f"{where} has cameras {sorted(ep.images)}, the first has {list(self.cameras)}"
                )
            if ep.state.shape[1:] != first.state.shape[1:] or ep.action.shape[1:] != first.action.shape[1:]:
                raise SchemaError(
                    f"{where} has state/action dims {ep.state.shape[1:]}/{ep.action.shape[1:]}, "
                    f"the first has {first.state.shape[1:]}/{first.action.shape[1:]}"
                )
            if len(ep.action) == 0:
                raise SchemaError(f"{where} has no steps")
        lengths = np.array([len(ep.action) for ep in self.episodes], np.int64)
        self.episode_of = np.repeat(np.arange(len(self.episodes)), lengths)  # flat step -> episode
        self.t_of = np.concatenate([np.arange(n) for n in lengths])  # flat step -> t
        self.state_dim = first.state.shape[1]
        self.action_dim = first.action.shape[1]
        self.subgoals: list[np.ndarray] | None = None
        if subgoal is not None:
            subgoal.check(self.state_dim, self.action_dim, "ChunkDataset subgoal")
            self.subgoals = [subgoal_targets(ep.action, ep.state, subgoal) for ep in self.episodes]

    def __len__(self) -> int:
        return len(self.episode_of)

    def all_actions(self) -> np.ndarray:
        """float32 [N, A], every executed action (for normalisation statistics)."""
        return np.concatenate([ep.action for ep in self.episodes])

    def all_states(self) -> np.ndarray:
        """float32 [N, S]."""
        return np.concatenate([ep.state for ep in self.episodes])

    def get(self, flat: np.ndarray) -> ChunkBatch:
        """Samples at flat step indices (int64 [B])."""
        h = self.horizon
        eps, ts = self.episode_of[flat], self.t_of[flat]
        b = len(flat)
        actions = np.empty((b, h, self.action_dim), np.float32)
        mask = np.zeros((b, h), bool)
        images = {c: np.empty((b, *self.episodes[0].images[c].shape[1:]), np.uint8) for c in self.cameras}
        state = np.empty((b, self.state_dim), np.float32)
        intervention = np.empty(b, bool)
        for i, (e, t) in enumerate(zip(eps, ts, strict=True)):
            ep = self.episodes[e]
            n = len(ep.action)
            idx = np.minimum(np.arange(t, t + h), n - 1)
            actions[i] = ep.action[idx]
            mask[i] = np.arange(t, t + h) < n
            for c in self.cameras:
                images[c][i] = ep.images[c][t]
            state[i] = ep.state[t]
            intervention[i] = ep.intervention[t]
        instructions = [self.episodes[e].meta.instruction for e in eps]
        subgoal = (
            None
            if self.subgoals is None
            else np.stack([self.subgoals[e][t] for e, t in zip(eps, ts, strict=True)])
        )
        return ChunkBatch(
            images,
            state,
            actions,
            mask,
            instructions,
            eps.astype(np.int64),
            ts.astype(np.int64),
            intervention,
            subgoal,
        )

    def sample(self, batch_size: int, rng: np.random.Generator) -> ChunkBatch:
        """B samples drawn uniformly over all steps."""
        return self.get(rng.integers(0, len(self), batch_size))


def split_by_episode(
    episodes: Sequence[Episode], val_fraction: float, seed: int
) -> tuple[list[Episode], list[Episode]]:
    """Train/validation split by whole episodes (never by frame: neighbouring frames leak)."""
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_val = round(val_fraction * len(episodes))
    if val_fraction > 0 and n_val == 0 and len(episodes) > 1:
        n_val = 1
    val = [episodes[i] for i in sorted(order[:n_val])]
    train = [episodes[i] for i in sorted(order[n_val:])]
    if not train:
        raise SchemaError(
            f"split_by_episode: {len(episodes)} episode(s) leave none for training at val_fraction={val_fraction}"
        )
    return train, val
