"""`rlpost train-critic`: fit a chunk critic for a policy on episode stores, save it beside a report.

    rlpost train-critic policy=runs/demo/pretrain/policy \
        'stores=[runs/demo/demos,runs/demo/practice/store]' out=runs/critic

writes ``<out>/critic.safetensors`` (what `rlpost eval critic=... best_of=N` acts with) and
``<out>/critic_fit.json`` (the diagnostics). Every finished episode of every store is used:
demos, takeovers and practice, each window with what was executed. Episodes from a task other
than ``task`` are skipped (named in the log).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from learner.chunk_critic import (
    ChunkCriticConfig,
    CriticEpisode,
    CriticFit,
    PrefixFn,
    WindowData,
    build_windows,
    fit_critic,
)
from rlpost.data.episode_store import EpisodeStore
from rlpost.feature_cache import FeatureCache
from rlpost.policy.checkpoint import apply_head, load_checkpoint, load_head_file
from rlpost.policy.chunk_critic import ChunkCritic, CriticSpec, save_critic
from rlpost.policy.vla import VLA
from rlpost.schema import EpisodeMeta

log = logging.getLogger(__name__)
TERMINAL = ("success", "failure", "timeout")


@dataclass
class TrainCriticConfig:
    """Settings of `rlpost train-critic`."""

    checkpoint: str = "runs/demo/pretrain/policy"  # the policy (`policy=` on the CLI)
    head: str = ""  # a published head file to load first: the critic's candidates are its chunks
    stores: list[str] = field(default_factory=lambda: ["runs/demo/demos"])
    task: str = "tabletop"
    out: str = "runs/critic"
    critic: ChunkCriticConfig = field(default_factory=ChunkCriticConfig)
    seed: int = 0
    threads: int = 0
    progress: bool = True


@dataclass
class StoreFit:
    """A critic fitted on stores, and what it was fitted on (for the actors trained against it)."""

    critic: ChunkCritic
    fit: CriticFit
    episodes: list[CriticEpisode]
    data: WindowData
    prefixes: PrefixFn  # the frozen features of each (episode id, t), from the fit's feature cache


def read_episodes(
    stores: list[EpisodeStore], task: str, keep: Callable[[EpisodeMeta], bool] | None = None
) -> tuple[list[CriticEpisode], dict[str, EpisodeStore]]:
    """Every finished episode of ``task`` in the stores (that ``keep`` accepts), and which store holds each."""
    episodes, where, skipped = [], {}, 0
    for store in stores:
        for meta in store.episodes():
            if meta.task != task:
                skipped += 1
                continue
            if meta.outcome == "running" or (keep is not None and not keep(meta)):
                continue
            ep = store.read_frames(meta.episode_id, np.arange(meta.length), with_images=False)
            episodes.append(
                CriticEpisode(
                    meta.episode_id,
                    np.asarray(ep.state, np.float32),
                    np.asarray(ep.action, np.float32),
                    success=meta.outcome == "success",
                    terminal=meta.outcome in TERMINAL,
                    source=meta.source,
                    intervention=np.asarray(ep.intervention, bool),
                )
            )
            where[meta.episode_id] = store
    if skipped:
        log.info("critic: skipped %d episodes of tasks other than %r", skipped, task)
    return episodes, where


def critic_spec(vla: VLA, cfg: ChunkCriticConfig) -> CriticSpec:
    """The spec of a critic for ``vla``'s features, state and actions."""
    return CriticSpec(
        prefix_width=vla.backbone.width,
        state_dim=vla.cfg.policy_state_dim,
        action_dim=vla.cfg.action_dim,
        chunk=cfg.chunk,
        heads=cfg.heads,
        width=cfg.width,
        gamma=cfg.gamma,
        backbone_fingerprint=vla.backbone.fingerprint(),
        version=vla.head_version,
    )


def fit_on_stores(
    vla: VLA,
    stores: list[EpisodeStore],
    task: str,
    cfg: ChunkCriticConfig,
    seed: int,
    keep: Callable[[EpisodeMeta], bool] | None = None,
    features_dir: str | Path | None = None,
    progress: bool = False,
) -> StoreFit:
    """Fit a fresh critic for ``vla`` (its frozen backbone's features, its head's candidate
    chunks) on the finished ``task`` episodes of ``stores`` that ``keep`` accepts."""
    episodes, where = read_episodes(stores, task, keep)
    if not episodes:
        raise ValueError(f"chunk critic: no finished {task!r} episodes to fit on")

    def frames(eid: str) -> tuple[dict[str, np.ndarray], str]:
        store = where[eid]
        meta = store.meta(eid)
        return store.read_frames(eid, np.arange(meta.length)).images, meta.instruction

    vla.eval()
    cache = FeatureCache(vla.backbone.freeze(), frames, root=features_dir, max_memory_mb=4096)
    data = build_windows(
        episodes, vla, cache.prefixes, cfg, torch.Generator().manual_seed(seed), progress=progress
    )
    critic, fit = fit_critic(data, critic_spec(vla, cfg), cfg, seed, progress=progress)
    return StoreFit(critic, fit, episodes, data, cache.prefixes)


def train_critic(cfg: TrainCriticConfig) -> tuple[Path, CriticFit]:
    """Fit and save the critic (`rlpost train-critic`); returns (critic file, diagnostics)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    vla = load_checkpoint(cfg.checkpoint)
    if cfg.head:
        apply_head(vla, load_head_file(cfg.head))
    stores = [EpisodeStore.open(p, create=False, recover=False) for p in cfg.stores]
    try:
        run = fit_on_stores(vla, stores, cfg.task, cfg.critic, cfg.seed, progress=cfg.progress)
        critic, fit, episodes = run.critic, run.fit, run.episodes
    finally:
        for s in stores:
            s.close()
    out = Path(cfg.out)
    path = save_critic(critic, out / "critic.safetensors")
    doc = {
        "config": dataclasses.asdict(cfg),
        "fit": dataclasses.asdict(fit),
        "sources": {s: sum(e.source == s for e in episodes) for s in sorted({e.source for e in episodes})},
        "successes": int(sum(e.success for e in episodes)),
    }
    (out / "critic_fit.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
    return path, fit
