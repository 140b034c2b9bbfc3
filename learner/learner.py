"""The central learner: trains the action head on cached features of a frozen backbone.

    learner = Learner(cfg, store, policy_dir, run_dir)
    learner.train(500)            # refresh replay, update, checkpoint + publish every publish_every

Only the head's parameters have optimizer state. The backbone's fingerprint is
checked at every publish: if any backbone weight changed, the learner stops with
an error instead of shipping a head the robots' backbone does not match.

Run directory::

    <run>/checkpoints/last/   VLA + head optimizer + step + version + replay RNG (resume starts here)
                              with learner.ema_decay > 0 the VLA is the averaged head (what
                              shipped) and live_head.safetensors the optimizer's own weights
    <run>/heads/              head-<version>.safetensors, one per published version
    <run>/features/           the feature cache's spill files
    <run>/metrics.jsonl
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learner.advantages import returns_to_go
from learner.config import LearnerConfig
from learner.critic import Critic, ValueSamples
from learner.ema import HeadAverage
from learner.head_publisher import HeadPublisher
from learner.replay import EpisodeView, Replay
from learner.rules import batch_loss, make_rule
from rlpost.data.episode_store import EpisodeStore
from rlpost.feature_cache import FeatureCache
from rlpost.metrics import MetricsLogger
from rlpost.policy import VLA, load_checkpoint, load_head_file, save_checkpoint, save_head
from rlpost.policy.checkpoint import recover_checkpoint
from rlpost.policy.training_state import load_training_state, save_training_state

log = logging.getLogger(__name__)
LIVE_HEAD = "live_head.safetensors"  # the optimizer's weights beside a checkpoint of the averaged head


class Learner:
    """See the module docstring."""

    def __init__(
        self,
        cfg: LearnerConfig,
        store: EpisodeStore,
        policy_dir: str | Path,
        run_dir: str | Path,
        metrics: MetricsLogger | None = None,
        seed: int = 0,
        features_dir: str | Path | None = None,
    ) -> None:
        """``features_dir``: where the feature cache spills (default ``<run>/features``); runs
        that share a frozen backbone and a store may share it (entries are per fingerprint)."""
        self.cfg, self.store, self.run_dir = cfg, store, Path(run_dir)
        self.last = self.run_dir / "checkpoints" / "last"
        recover_checkpoint(self.last)  # a learner killed while checkpointing
        resuming = (self.last / "config.json").exists()
        vla = load_checkpoint(self.last if resuming else policy_dir)
        self.rule = make_rule(cfg)
        vla = self.rule.prepare(vla)
        vla.backbone.freeze()
        self.vla = vla
        # with an average, the checkpoint holds the averaged head and the live weights ride beside it
        self.average = HeadAverage(vla, cfg.ema_decay) if cfg.ema_decay > 0 else None
        if resuming and (self.last / LIVE_HEAD).exists():
            self.vla.load_head(load_head_file(self.last / LIVE_HEAD).tensors, vla.head_version)
        self.backbone_fingerprint = vla.backbone.fingerprint()
        self.opt = torch.optim.AdamW(self.trainable(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.rule.start(self.vla, self.shipped)
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.step = 0
        self.version = vla.head_version
        if resuming:
            meta = load_training_state(self.last, self.opt)
            self.step, self.version = int(meta["step"]), int(meta["version"])
            self.rng.bit_generator.state = meta["numpy_rng"]
            log.info("learner: resumed at step %d, head version %d", self.step, self.version)
            # Updates after the checkpoint died with the process and are redone from here.
            dropped = metrics.rewind(self.step) if metrics is not None else 0
            if dropped:
                log.warning(
                    "learner: %d logged updates after checkpoint step %d were lost in a crash; redoing them",
                    dropped,
                    self.step,
                )
        # a fresh run continues the versions of the checkpoint it starts from; a resumed one whose
        # heads directory is still empty has checkpointed its first version but not published it
        self.publisher = HeadPublisher(
            self.run_dir / "heads", after=self.version - 1 if resuming else self.version
        )
        if self.version > self.publisher.latest:  # checkpointed, not yet published, before a crash
            self.publisher.publish(self.shipped, self.version)
        self.cache = FeatureCache(
            vla.backbone,
            self._frames,
            root=Path(features_dir) if features_dir else self.run_dir / "features",
            max_memory_mb=cfg.cache_memory_mb,
        )
        self.replay = Replay(store, cfg, vla.cfg.horizon)
        self.metrics = metrics
        self.critic = (
            Critic(vla.backbone.width, vla.cfg.policy_state_dim, updates=cfg.critic_updates)
            if cfg.value == "refit"
            else None
        )
        self._critic_episodes = 0  # practice episodes the critic was last fit on

    @property
    def shipped(self) -> VLA:
        """The policy robots act with and evaluations measure: the averaged head if
        ``ema_decay > 0``, else the live one (both share the frozen backbone)."""
        return self.average.vla if self.average is not None else self.vla

    def trainable(self) -> list[torch.nn.Parameter]:
        """What the rule updates (the head, or only the steering net in steer mode)."""
        return self.rule.trainable(self.vla)

    def _frames(self, episode_id: str) -> tuple[dict[str, np.ndarray], str]:
        meta = self.store.meta(episode_id)
        frames = self.store.read_frames(episode_id, np.arange(meta.length))
        return frames.images, meta.instruction

    # -- one update -----------------------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        """One gradient step on a replay batch; returns its metrics."""
        t0 = time.perf_counter()
        batch = self.replay.sample(self.cfg.batch_size, self.rng)
        prefix = self.cache.prefixes(batch.keys)
        self.vla.train()
        lr = self.cfg.lr_at(self.step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        loss, metrics = batch_loss(self.rule, self.vla, prefix, batch, self.rng, self.step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad = torch.nn.utils.clip_grad_norm_(self.trainable(), self.cfg.grad_clip)
        self.opt.step()
        if self.average is not None:
            self.average.update(self.vla)
        self.step += 1
        s = self.cache.stats
        metrics.update(
            {
                "learner/grad_norm": float(grad),
                "learner/lr": lr,
                "learner/update_s": time.perf_counter() - t0,
                "learner/cache_hit_rate": s.hit_rate,
                "learner/replay_episodes": self.replay.stats.episodes,
                "learner/replay_pending": self.replay.stats.pending,
            }
        )
        return metrics

    def train(self, updates: int, progress: Any = None) -> dict[str, float]:
        """Run ``updates`` updates, refreshing replay and publishing every ``publish_every``.

        Returns the metrics of the last update.
        """
        last: dict[str, float] = {}
        self.refresh()
        for _ in range(updates):
            last = self.update()
            if self.metrics is not None:
                self.metrics.log(last, self.step)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{last['learner/loss']:.4f}", version=self.version)
            if self.step % self.cfg.publish_every == 0:
                self.checkpoint_and_publish()
                self.refresh()
        return last

    def refresh(self) -> int:
        """Take new episodes into replay (returns how many) and, with ``value=refit``, refit the
        critic when the practice episodes changed since its last fit (whoever refreshed replay)."""
        added = self.replay.refresh()
        if self.critic is not None:
            practice = [
                v for v in self.replay.views.values() if v.meta.source != "demo" and v.reward is not None
            ]
            if practice and len(practice) != self._critic_episodes:
                self._refit(practice)
        return added

    def _refit(self, practice: list[EpisodeView]) -> None:
        """Fit the critic to the practice episodes' returns, then revalue their advantages."""
        assert self.critic is not None
        t0 = time.perf_counter()
        keys, states, targets = [], [], []
        for v in practice:
            bootstrap = 0.0 if v.terminal else float(v.value[-1])
            targets.append(returns_to_go(v.reward, bootstrap))
            states.append(self._norm_state(v.state))
            keys += [(v.meta.episode_id, t) for t in range(len(v.reward))]
        samples = ValueSamples(keys, np.concatenate(states), np.concatenate(targets))
        # seeded by the run and the episodes it sees: a resumed learner refits the same critic
        stats = self.critic.fit(samples, self.cache.prefixes, seed=self.seed * 1_000_003 + len(practice))
        # one pass over every step, split back per episode
        values = self.critic.predict(keys, samples.state, self.cache.prefixes)
        bounds = np.cumsum([len(v.reward) for v in practice])[:-1]
        for v, value in zip(practice, np.split(values, bounds), strict=True):
            self.replay.revalue(v, value)
        self._critic_episodes = len(practice)
        log.info(
            "learner: critic refit on %d practice episodes (%d steps) in %.1fs, held-out explained variance %.2f",
            stats.episodes,
            stats.samples,
            time.perf_counter() - t0,
            stats.heldout_ev,
        )
        if self.metrics is not None:
            self.metrics.log(stats.metrics(), self.step)

    def _norm_state(self, state: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            s = self.vla.state_norm.normalize(self.vla.select_state(torch.from_numpy(state)))
        return s.numpy().astype(np.float32)

    def checkpoint_and_publish(self) -> int:
        """Checkpoint, then publish the head as the next version; returns it.

        The checkpoint is written first, so a crash in between re-publishes the same
        version on resume: versions stay monotonic and no update is applied twice.

        Raises:
            RuntimeError: the backbone changed (it must stay frozen).
        """
        if self.vla.backbone.fingerprint() != self.backbone_fingerprint:
            raise RuntimeError(
                "learner: the backbone's weights changed; it must stay frozen. Not publishing."
            )
        self.rule.before_publish(self.vla, self.shipped)
        self.version += 1
        self.vla.head_version = self.shipped.head_version = self.version
        state = {"step": self.step, "version": self.version, "numpy_rng": self.rng.bit_generator.state}

        def write_more(d: Path) -> None:
            save_training_state(d, self.opt, state)
            if self.average is not None:
                save_head(self.vla, d / LIVE_HEAD)

        save_checkpoint(self.shipped, self.last, extra=state, write_more=write_more)
        self.publisher.publish(self.shipped, self.version)
        self.rule.after_publish(self.shipped)
        return self.version
