"""Episode features for the reward model: the policy's frozen backbone through the shared FeatureCache.

The backbone runs once per stored frame (:class:`rlpost.feature_cache.FeatureCache`);
the reward model reads the cached prefixes and the states. A mismatched-instruction
negative is the same frames under another instruction, so it is its own cache entry,
``<episode_id>~mm-<hash of the instruction>``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reward_models.model import Calibration, RewardModel
from reward_models.targets import window_index
from rlpost.data import EpisodeStore
from rlpost.feature_cache import FeatureCache
from rlpost.policy import Backbone, load_checkpoint

log = logging.getLogger(__name__)

MISMATCH_SEP = "~mm-"


def mismatch_id(episode_id: str, instruction: str) -> str:
    """Cache key of an episode's frames under another instruction."""
    return f"{episode_id}{MISMATCH_SEP}{hashlib.sha1(instruction.encode()).hexdigest()[:10]}"


def load_frozen_backbone(policy: str | Path) -> Backbone:
    """The frozen backbone of a VLA checkpoint (raises CheckpointError naming a bad file)."""
    vla = load_checkpoint(policy)
    return vla.backbone.freeze()


class EpisodeFeatures:
    """Cached prefixes and states of a store's episodes under one frozen backbone."""

    def __init__(
        self,
        backbone: Backbone,
        store: EpisodeStore,
        cache_dir: str | Path | None = None,
        dtype: str = "float16",
        max_memory_mb: float = 4096.0,
    ) -> None:
        """Args:
        backbone: frozen (FeatureCache refuses another).
        store: the episode store the frames come from.
        cache_dir: spill directory for features ("" / None: memory only).
        dtype: cached token dtype, "float16" or "float32".
        max_memory_mb: in-memory budget of the cache.
        """
        self.store = store
        self._mismatch: dict[str, tuple[str, str]] = {}  # cache key -> (episode id, instruction)
        self.cache = FeatureCache(
            backbone, self._load, root=cache_dir or None, max_memory_mb=max_memory_mb, dtype=dtype
        )
        self.fingerprint = self.cache.fingerprint
        self.width = backbone.width

    def _load(self, key: str) -> tuple[dict[str, np.ndarray], str]:
        if key in self._mismatch:
            eid, instruction = self._mismatch[key]
            return self.store.read_episode(eid).images, instruction
        ep = self.store.read_episode(key)
        return ep.images, ep.meta.instruction

    def register_mismatch(self, episode_id: str, instruction: str) -> str:
        """Declare the frames of ``episode_id`` under ``instruction``; returns the cache key."""
        key = mismatch_id(episode_id, instruction)
        self._mismatch[key] = (episode_id, instruction)
        return key

    def tokens(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """tokens [T, P, D] (cache dtype) and mask bool [T, P] of an episode or mismatch key."""
        return self.cache.episode(key)

    def steps(self, episode_id: str) -> tuple[np.ndarray, np.ndarray]:
        """states float32 [T, S] and intervention flags bool [T] of an episode."""
        n = self.store.meta(episode_id).length
        frames = self.store.read_frames(episode_id, np.arange(n))
        return frames.state, frames.intervention


@dataclass
class EpisodePrediction:
    """Per-step reward-model outputs of one clip (float32 [L] each)."""

    progress: np.ndarray  # expected progress in [0, 1]
    success_logit: np.ndarray  # raw
    success_prob: np.ndarray  # calibrated
    value: np.ndarray  # expected normalised steps-to-go return in [-1, 0]
    p_success_future: np.ndarray  # value mass above -0.5


@torch.no_grad()
def predict_clip(
    model: RewardModel,
    tokens: np.ndarray,
    mask: np.ndarray,
    state: np.ndarray,
    calibration: Calibration,
    seq: np.ndarray | None = None,
    batch: int = 256,
) -> EpisodePrediction:
    """Run the model causally over a clip: at position i it sees seq[0] and the K frames up to seq[i].

    Args:
        tokens, mask, state: [T, P, D], [T, P], [T, S] of the episode.
        calibration: maps the success logit to a probability.
        seq: int64 [L] frame order (default ``arange(T)``; a permutation for the shuffled control).
        batch: windows per forward pass.

    Returns:
        Predictions at each position of ``seq``.
    """
    model.eval()
    n = len(tokens)
    seq = np.arange(n) if seq is None else np.asarray(seq, np.int64)
    emb = torch.cat(
        [
            model.embed_frames(
                torch.from_numpy(np.asarray(tokens[s : s + batch])),
                torch.from_numpy(np.asarray(mask[s : s + batch])),
                torch.from_numpy(np.asarray(state[s : s + batch])),
            )
            for s in range(0, n, batch)
        ]
    )
    idx = window_index(seq, np.arange(len(seq)), model.cfg.window, model.cfg.stride)
    outs = [
        model.forward_windows(emb[torch.from_numpy(idx[s : s + batch])]) for s in range(0, len(seq), batch)
    ]
    progress = torch.cat([o.progress() for o in outs])
    logit = torch.cat([o.success_logit for o in outs])
    value = torch.cat([o.value() for o in outs])
    p_future = torch.cat([o.p_success_future() for o in outs])
    return EpisodePrediction(
        progress=progress.numpy().astype(np.float32),
        success_logit=logit.numpy().astype(np.float32),
        success_prob=calibration.success_prob(logit).numpy().astype(np.float32),
        value=value.numpy().astype(np.float32),
        p_success_future=p_future.numpy().astype(np.float32),
    )
