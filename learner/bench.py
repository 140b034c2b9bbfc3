"""`rlpost bench learner`: head updates/s with the feature cache vs re-running the frozen backbone.

Both loops train the same head on the same replay batches of a synthetic store; they
are interleaved update by update, so machine load hits them alike. "recompute"
reads the batch's frames from the store and runs the frozen backbone every update,
as a learner without a feature cache must; "cached" looks the prefixes up.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from learner.config import LearnerConfig
from learner.replay import Replay
from learner.rules import batch_loss, make_rule
from rlpost.data.episode_store import EpisodeStore
from rlpost.feature_cache import FeatureCache
from rlpost.policy import VLA, HFBackboneConfig, ObsBatch, PolicyConfig, Prefix
from rlpost.schema import EpisodeMeta, StepRecord


@dataclass
class LearnerBenchConfig:
    """Settings of `rlpost bench learner`."""

    backbones: list[str] = field(
        default_factory=lambda: ["tiny", "paligemma"]
    )  # paligemma: ~86M params, built offline
    image_size: int = 96  # camera images (and the transformers model's vision size)
    batch_size: int = 32
    updates: int = 6  # timed updates per loop (after one warm-up each)
    episodes: int = 8
    steps_per_episode: int = 16
    horizon: int = 10
    threads: int = 0
    out: str = ""


def _synthetic_store(root: Path, cfg: LearnerBenchConfig) -> EpisodeStore:
    rng = np.random.default_rng(0)
    store = EpisodeStore.open(root)
    for _ in range(cfg.episodes):
        eid = uuid.uuid4().hex
        store.begin(EpisodeMeta(eid, "bench", "put the red block in the ring", "r", "s", "demo"))
        for t in range(cfg.steps_per_episode):
            store.append(
                eid,
                StepRecord(
                    images={"top": rng.integers(0, 255, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8)},
                    state=rng.normal(size=6).astype(np.float32),
                    action=rng.uniform(-1, 1, 3).astype(np.float32),
                    policy_action=np.zeros(3, np.float32),
                    intervention=False,
                    policy_version=-1,
                    t_ns=t,
                    frame_index=t,
                ),
            )
        store.finish(eid, "success", "env")
    return store


def _policy(name: str, cfg: LearnerBenchConfig, tmp: Path) -> VLA:
    common = dict(state_dim=6, action_dim=3, horizon=cfg.horizon, cameras=["top"])
    if name == "tiny":
        return VLA(PolicyConfig(**common))
    from rlpost.policy.hf_tiny import PALIGEMMA_BENCH_SIZES, build_tiny_vlm

    path = build_tiny_vlm(name, tmp / name, **{**PALIGEMMA_BENCH_SIZES, "image_size": cfg.image_size})
    return VLA(PolicyConfig(backbone="hf", hf=HFBackboneConfig(model=str(path)), **common))


def _critic_update_times(
    vla: VLA, store: EpisodeStore, cache: FeatureCache, cfg: LearnerBenchConfig
) -> list[float]:
    """Seconds of ``cfg.updates`` chunk-critic TD updates on the synthetic store (after one warm-up)."""
    import copy

    from learner.chunk_critic import ChunkCriticConfig, build_windows, td_update
    from learner.train_critic import critic_spec, read_episodes
    from rlpost.policy.chunk_critic import ChunkQ

    ccfg = ChunkCriticConfig(chunk=min(4, cfg.horizon), batch_size=cfg.batch_size)
    episodes, _ = read_episodes([store], "bench")
    data = build_windows(
        episodes, vla, cache.prefixes, ccfg, torch.Generator().manual_seed(0), progress=False
    )
    net = ChunkQ(critic_spec(vla, ccfg))
    target = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=ccfg.lr)
    rng = np.random.default_rng(0)
    out = []
    for i in range(cfg.updates + 1):
        rows = torch.from_numpy(rng.integers(0, len(data), (ccfg.heads, ccfg.batch_size)))
        t = time.perf_counter()
        td_update(net, target, opt, data, rows, ccfg)
        if i:
            out.append(time.perf_counter() - t)
    return out


def run_learner_bench(cfg: LearnerBenchConfig) -> dict[str, object]:
    """Updates/s of both loops per backbone; returns table rows."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        store = _synthetic_store(tmp / "store", cfg)
        lcfg = LearnerConfig(mode="bc_all", batch_size=cfg.batch_size)
        rule = make_rule(lcfg)
        for name in cfg.backbones:
            vla = _policy(name, cfg, tmp)
            vla.backbone.freeze()
            replay = Replay(store, lcfg, cfg.horizon)
            replay.refresh()

            def frames(eid: str) -> tuple[dict[str, np.ndarray], str]:
                m = store.meta(eid)
                return store.read_frames(eid, np.arange(m.length)).images, m.instruction

            t0 = time.perf_counter()
            cache = FeatureCache(vla.backbone, frames, root=tmp / "features" / name)
            cache.warm([m.episode_id for m in store.episodes()])
            fill_s = time.perf_counter() - t0
            opt = torch.optim.AdamW(vla.head_parameters(), lr=1e-4)
            rng = np.random.default_rng(0)

            def cached(batch, cache: FeatureCache = cache) -> Prefix:
                return cache.prefixes(batch.keys)

            def recompute(batch, vla: VLA = vla) -> Prefix:
                f = store.read_steps(batch.keys)
                return vla.encode(
                    ObsBatch(f.images, f.state, [store.meta(e).instruction for e, _ in batch.keys])
                )

            times: dict[str, list[float]] = {"cached": [], "recompute": []}
            for i in range(cfg.updates + 1):
                for label, get_prefix in (("cached", cached), ("recompute", recompute)):
                    batch = replay.sample(cfg.batch_size, rng)
                    t = time.perf_counter()
                    loss, _ = batch_loss(rule, vla, get_prefix(batch), batch, rng, 0)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if i:  # the first round warms up
                        times[label].append(time.perf_counter() - t)
            times["critic"] = _critic_update_times(vla, store, cache, cfg)
            med = {k: statistics.median(v) for k, v in times.items()}
            params = sum(p.numel() for p in vla.backbone.parameters())
            rows.append(
                {
                    "backbone": name,
                    "backbone_params": params,
                    "cached_updates_s": 1 / med["cached"],
                    "recompute_updates_s": 1 / med["recompute"],
                    "speedup": med["recompute"] / med["cached"],
                    # a chunk critic's TD update (5 heads x 256 wide, each on its own batch, a
                    # max backup over 4 candidates) against a cached head update
                    "critic_updates_s": 1 / med["critic"],
                    "critic_vs_head": med["critic"] / med["cached"],
                    "cache_fill_s": fill_s,
                    "frames": cfg.episodes * cfg.steps_per_episode,
                }
            )
        store.close()
    return {
        "rows": rows,
        "setup": {
            "batch": cfg.batch_size,
            "image_size": cfg.image_size,
            "horizon": cfg.horizon,
            "threads": torch.get_num_threads(),
        },
    }
