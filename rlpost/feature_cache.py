"""Frozen-backbone feature cache: each stored frame goes through the backbone once.

In RL the backbone is frozen, so the prefix of a stored frame never changes. The
learner and the reward model both read prefixes from here: whole episodes are
encoded in batches on first use, kept in memory (LRU, bounded), spilled to disk
as .npy files (memory-mapped when read back) and keyed by the backbone's
fingerprint, so features of another backbone can never be mixed in.

Layout on disk: ``<root>/<fingerprint>/<episode_id>.tokens.npy`` (float16 or float32
[T, P, D]) and ``.mask.npy`` (bool [T, P]).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlpost.policy.backbone import Backbone, Prefix

log = logging.getLogger(__name__)

# episode id -> (images {camera: uint8 [T, h, w, 3]}, instruction); usually EpisodeStore.read_episode
FrameLoader = Callable[[str], tuple[dict[str, np.ndarray], str]]


@dataclass
class CacheStats:
    """Counters for metrics (learner/cache_hit_rate, ...)."""

    hits: int = 0  # frames served from memory or disk
    misses: int = 0  # frames that had to go through the backbone
    backbone_calls: int = 0  # batched backbone forward passes
    disk_reads: int = 0  # episodes loaded back from disk
    bytes_in_memory: int = 0

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else float("nan")


class FeatureCache:
    """Prefixes of stored frames under one frozen backbone. See the module docstring."""

    def __init__(
        self,
        backbone: Backbone,
        loader: FrameLoader,
        root: str | Path | None = None,
        max_memory_mb: float = 1024.0,
        batch_size: int = 64,
        dtype: str = "float32",
    ) -> None:
        """Args:
        backbone: must be frozen (features of a training backbone go stale at once).
        loader: episode id -> (images per camera uint8 [T, h, w, 3], instruction).
        root: spill directory; None keeps everything in memory (bounded by max_memory_mb,
            evicted episodes are recomputed).
        max_memory_mb: memory budget of cached tokens.
        batch_size: frames per backbone call.
        dtype: "float32" (bit-exact with recomputation) or "float16" (half the memory).

        Raises:
            ValueError: the backbone is not frozen, or an unknown dtype.
        """
        if not backbone.frozen:
            raise ValueError(
                "FeatureCache needs a frozen backbone (call backbone.freeze()); its features must not change"
            )
        if dtype not in ("float32", "float16"):
            raise ValueError(f"FeatureCache dtype={dtype!r} must be 'float32' or 'float16'")
        self.backbone, self.loader = backbone, loader
        self.fingerprint = backbone.fingerprint()
        self.dir = Path(root) / self.fingerprint if root is not None else None
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_memory_mb * 2**20)
        self.batch_size = batch_size
        self.np_dtype = np.dtype(dtype)
        self.stats = CacheStats()
        self._mem: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    # -- public -----------------------------------------------------------------------------------------
    def episode(self, episode_id: str) -> tuple[np.ndarray, np.ndarray]:
        """tokens [T, P, D] and mask bool [T, P] of every frame of an episode."""
        hit = self._mem.get(episode_id)
        if hit is not None:
            self._mem.move_to_end(episode_id)
            self.stats.hits += len(hit[0])
            return hit
        feats = self._read_disk(episode_id)
        if feats is not None:
            self.stats.hits += len(feats[0])
        else:
            feats = self._compute(episode_id)
            self._write_disk(episode_id, feats)
        self._remember(episode_id, feats)
        return feats

    def prefixes(self, keys: Sequence[tuple[str, int]], device: torch.device | str = "cpu") -> Prefix:
        """The prefix of each (episode id, t), stacked in order: tokens float32 [B, P, D], mask [B, P]."""
        by_episode: dict[str, list[int]] = {}
        for i, (eid, _) in enumerate(keys):
            by_episode.setdefault(eid, []).append(i)
        first_tokens, _ = self.episode(keys[0][0])
        tokens = np.empty((len(keys), *first_tokens.shape[1:]), np.float32)
        mask = np.empty((len(keys), first_tokens.shape[1]), bool)
        for eid, rows in by_episode.items():
            ep_tokens, ep_mask = self.episode(eid)
            ts = np.array([keys[i][1] for i in rows])
            if ts.max() >= len(ep_tokens) or ts.min() < 0:
                raise IndexError(
                    f"feature cache: episode {eid} has {len(ep_tokens)} frames, asked for t={ts.tolist()}"
                )
            tokens[rows] = ep_tokens[ts]
            mask[rows] = ep_mask[ts]
        return Prefix(torch.from_numpy(tokens).to(device), torch.from_numpy(mask).to(device))

    def warm(self, episode_ids: Sequence[str]) -> None:
        """Encode (or load) these episodes now, e.g. before a timed training loop."""
        for eid in episode_ids:
            self.episode(eid)

    # -- internals ----------------------------------------------------------------------------------------
    def _compute(self, episode_id: str) -> tuple[np.ndarray, np.ndarray]:
        images, instruction = self.loader(episode_id)
        n = len(next(iter(images.values())))
        toks, masks = [], []
        for s in range(0, n, self.batch_size):
            batch = {
                c: torch.from_numpy(np.ascontiguousarray(v[s : s + self.batch_size]))
                for c, v in images.items()
            }
            m = len(next(iter(batch.values())))
            prefix = self.backbone(batch, [instruction] * m)
            self.stats.backbone_calls += 1
            toks.append(prefix.tokens.detach().cpu().numpy().astype(self.np_dtype))
            masks.append(prefix.mask.cpu().numpy())
        self.stats.misses += n
        return np.concatenate(toks), np.concatenate(masks)

    def _paths(self, episode_id: str) -> tuple[Path, Path]:
        assert self.dir is not None
        return self.dir / f"{episode_id}.tokens.npy", self.dir / f"{episode_id}.mask.npy"

    def _read_disk(self, episode_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        if self.dir is None:
            return None
        tp, mp = self._paths(episode_id)
        if not (tp.exists() and mp.exists()):
            return None
        try:
            tokens, mask = np.load(tp, mmap_mode="r"), np.load(mp)
        except (ValueError, OSError) as e:
            # A cache file is derived data: a damaged one is recomputed, loudly.
            log.warning("feature cache: %s is unreadable (%s); recomputing episode %s", tp, e, episode_id)
            return None
        if tokens.dtype != self.np_dtype or tokens.shape[:2] != mask.shape:
            log.warning(
                "feature cache: %s does not match (dtype %s, shape %s); recomputing",
                tp,
                tokens.dtype,
                tokens.shape,
            )
            return None
        self.stats.disk_reads += 1
        return tokens, mask

    def _write_disk(self, episode_id: str, feats: tuple[np.ndarray, np.ndarray]) -> None:
        if self.dir is None:
            return
        for path, arr in zip(self._paths(episode_id), feats, strict=True):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, arr)
            os.replace(tmp, path)  # readers never see a half-written file

    def _remember(self, episode_id: str, feats: tuple[np.ndarray, np.ndarray]) -> None:
        self._mem[episode_id] = feats
        self.stats.bytes_in_memory += feats[0].nbytes + feats[1].nbytes
        while self.stats.bytes_in_memory > self.max_bytes and len(self._mem) > 1:
            _, (t, m) = self._mem.popitem(last=False)
            self.stats.bytes_in_memory -= t.nbytes + m.nbytes
