"""Replay over the episode store: labelled episodes of every source, mixed by ratio and recency.

The replay keeps the small per-step arrays (state, action, flags, advantages) of each
episode in memory; images stay in the store and reach the learner only as cached
backbone features (rlpost.feature_cache). Episodes whose reward labels are not
written yet wait in ``pending`` (counted in the metrics) until the labeler catches up.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np

from learner.advantages import gae_advantage, mc_advantage, nstep_advantage, progress_delta_advantage
from learner.config import LearnerConfig
from learner.rules import rule_class
from rlpost.data.episode_store import EpisodeStore
from rlpost.schema import EpisodeMeta, SchemaError

log = logging.getLogger(__name__)
TERMINAL_OUTCOMES = ("success", "failure", "timeout")


@dataclass
class EpisodeView:
    """What the learner keeps of one stored episode."""

    meta: EpisodeMeta
    state: np.ndarray  # float32 [T, S]
    action: np.ndarray  # float32 [T, A], executed
    intervention: np.ndarray  # bool [T]
    adv: np.ndarray  # float32 [T], advantage of the chunk starting at t (NaN without labels)
    label_version: str  # "" when unlabelled
    reward: np.ndarray | None = None  # float32 [T], the labels' reward (None without labels)
    value: np.ndarray | None = None  # float32 [T], the labels' value (the reward model's)

    @property
    def terminal(self) -> bool:
        """The episode ended in the env's sense; an aborted one is cut (bootstrap from its value)."""
        return self.meta.outcome in TERMINAL_OUTCOMES


@dataclass
class ReplayBatch:
    """B samples: features are looked up by ``keys``."""

    keys: list[tuple[str, int]]  # (episode id, t)
    state: np.ndarray  # float32 [B, S]
    actions: np.ndarray  # float32 [B, H, A]
    action_mask: np.ndarray  # bool [B, H]
    adv: np.ndarray  # float32 [B], raw (not standardised)
    human: np.ndarray  # bool [B], a person held control at t
    task: np.ndarray  # str [B]
    source: np.ndarray  # str [B]: demo | autonomous | ...


@dataclass
class ReplayStats:
    episodes: int = 0
    pending: int = 0  # finished but not labelled yet (modes that need labels)
    demo_steps: int = 0
    practice_steps: int = 0
    skipped_outcomes: dict[str, int] = field(default_factory=dict)


def _version_key(v: str) -> tuple:
    # natural order: rm-v10 after rm-v9
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", v))


class Replay:
    """Eligible (episode, t) samples per the learner mode; see the module docstring."""

    def __init__(self, store: EpisodeStore, cfg: LearnerConfig, horizon: int) -> None:
        self.store, self.cfg, self.horizon = store, cfg, horizon
        self.views: dict[str, EpisodeView] = {}
        self.stats = ReplayStats()
        self._pools: dict[str, np.ndarray] = {}  # "demo" / "practice" -> int64 [N, 2] (view index, t)
        self._order: list[str] = []

    # -- loading --------------------------------------------------------------------------------------
    def refresh(self) -> int:
        """Take in newly finished (and newly labelled) episodes; returns how many were added."""
        added, pending = 0, 0
        for meta in self.store.episodes():
            if meta.episode_id in self.views:
                continue
            if meta.outcome == "running":
                continue
            sessions = self.cfg.replay.sessions
            if sessions and meta.source != "demo" and meta.session_id not in sessions:
                continue  # another run's practice in a shared store
            view = self._load(meta)
            if view is None:
                pending += 1
                continue
            self.views[meta.episode_id] = view
            self._order.append(meta.episode_id)
            added += 1
        self.stats.pending = pending
        if added:
            self._rebuild_pools()
        return added

    def _load(self, meta: EpisodeMeta) -> EpisodeView | None:
        eid = meta.episode_id
        # images reach the learner only through the feature cache: don't decode them here too
        frames = self.store.read_frames(eid, np.arange(meta.length), with_images=False)
        versions = self.store.label_versions(eid)
        want = self.cfg.replay.label_version
        version = (
            want if want in versions else (max(versions, key=_version_key) if versions and not want else "")
        )
        view = EpisodeView(
            meta,
            frames.state,
            frames.action,
            frames.intervention,
            np.full(meta.length, np.nan, np.float32),
            version,
        )
        if version:
            labels = self.store.read_labels(eid, version)
            for col in ("reward", "value") if self.cfg.advantage != "progress_delta" else ("progress",):
                if col not in labels or len(labels[col]) != meta.length:
                    raise SchemaError(
                        f"labels of episode {eid}: column {col!r} missing or not of length {meta.length}"
                    )
            if self.cfg.advantage == "progress_delta":
                view.adv = progress_delta_advantage(labels["progress"], self.cfg.execute)
                self._check_finite(view)
            else:
                view.reward = labels["reward"].astype(np.float32)
                view.value = labels["value"].astype(np.float32)
                self.revalue(view, view.value)
        elif self.cfg.needs_labels:
            return None
        return view

    def revalue(self, view: EpisodeView, value: np.ndarray) -> None:
        """Recompute ``view``'s advantages from its reward labels and ``value`` float32 [T]
        (the reward model's, or the learner's refit critic's)."""
        c = self.cfg
        if view.reward is None or value.shape != view.reward.shape:
            raise SchemaError(
                f"episode {view.meta.episode_id}: a value of shape {value.shape} for reward labels "
                f"{None if view.reward is None else view.reward.shape}"
            )
        if c.advantage == "nstep":
            view.adv = nstep_advantage(view.reward, value, c.execute, view.terminal)
        elif c.advantage == "mc":
            view.adv = mc_advantage(view.reward, value, view.terminal)
        elif c.advantage == "gae":
            view.adv = gae_advantage(view.reward, value, view.terminal, c.gae_lambda)
        else:
            raise ValueError(f"learner.advantage={c.advantage!r} does not use a value")
        self._check_finite(view)

    @staticmethod
    def _check_finite(view: EpisodeView) -> None:
        if not np.all(np.isfinite(view.adv)):
            raise SchemaError(f"labels of episode {view.meta.episode_id} give NaN/Inf advantages")

    def _eligible_steps(self, view: EpisodeView) -> np.ndarray:
        """Steps of this episode the rule trains on (a successes-only rule: takeovers and the fast successes)."""
        n = len(view.action)
        if not rule_class(self.cfg.mode).successes_only:
            return np.arange(n)
        keep = view.intervention.copy()  # takeover segments always count
        if view.meta.outcome == "success" and view.meta.episode_id in self._fast_successes:
            keep[:] = True
        return np.flatnonzero(keep)

    def _rebuild_pools(self) -> None:
        c = self.cfg
        ids = self._order
        practice_ids = [i for i in ids if self.views[i].meta.source != "demo"]
        if c.replay.recent_episodes:
            recent = set(practice_ids[-c.replay.recent_episodes :])
            practice_ids = [i for i in practice_ids if i in recent]
        self._fast_successes = self._fastest_successes()
        pools: dict[str, list[np.ndarray]] = {"demo": [], "practice": []}
        index = {eid: k for k, eid in enumerate(ids)}
        allowed_practice = set(practice_ids)
        for eid in ids:
            view = self.views[eid]
            pool = "demo" if view.meta.source == "demo" else "practice"
            if pool == "practice" and eid not in allowed_practice:
                continue
            ts = self._eligible_steps(view)
            if len(ts):
                pools[pool].append(np.stack([np.full(len(ts), index[eid]), ts], 1))
        self._pools = {k: np.concatenate(v) if v else np.zeros((0, 2), np.int64) for k, v in pools.items()}
        self.stats.episodes = len(ids)
        self.stats.demo_steps = len(self._pools["demo"])
        self.stats.practice_steps = len(self._pools["practice"])

    def _fastest_successes(self) -> set[str]:
        by_task: dict[str, list[EpisodeView]] = {}
        for v in self.views.values():
            if v.meta.outcome == "success":
                by_task.setdefault(v.meta.task, []).append(v)
        keep: set[str] = set()
        for views in by_task.values():
            views.sort(key=lambda v: len(v.action))
            n = max(1, round(self.cfg.curated.fastest * len(views)))
            keep |= {v.meta.episode_id for v in views[:n]}
        return keep

    # -- sampling -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(p) for p in self._pools.values())

    def sample(self, batch_size: int, rng: np.random.Generator) -> ReplayBatch:
        """A batch mixed from demos and practice by ``replay.demo_fraction`` (all from one pool if the other is empty).

        Raises:
            SchemaError: nothing to sample yet.
        """
        demo, practice = self._pools.get("demo"), self._pools.get("practice")
        if demo is None or (len(demo) + len(practice)) == 0:
            raise SchemaError(
                f"replay is empty for mode {self.cfg.mode!r}: {len(self.views)} episodes, {self.stats.pending} waiting for labels"
            )
        n_demo = round(self.cfg.replay.demo_fraction * batch_size)
        if len(practice) == 0:
            n_demo = batch_size
        elif len(demo) == 0:
            n_demo = 0
        rows = np.concatenate(
            [
                demo[rng.integers(0, len(demo), n_demo)],
                practice[rng.integers(0, len(practice), batch_size - n_demo)],
            ]
        )
        return self._gather(rows)

    def _gather(self, rows: np.ndarray) -> ReplayBatch:
        h = self.horizon
        views = [self.views[self._order[i]] for i in rows[:, 0]]
        b = len(rows)
        a_dim = views[0].action.shape[1]
        actions = np.empty((b, h, a_dim), np.float32)
        mask = np.zeros((b, h), bool)
        state = np.empty((b, views[0].state.shape[1]), np.float32)
        adv = np.empty(b, np.float32)
        human = np.empty(b, bool)
        for j, (v, t) in enumerate(zip(views, rows[:, 1], strict=True)):
            n = len(v.action)
            actions[j] = v.action[np.minimum(np.arange(t, t + h), n - 1)]
            mask[j] = np.arange(t, t + h) < n
            state[j] = v.state[t]
            adv[j] = v.adv[t]
            human[j] = v.intervention[t]
        return ReplayBatch(
            keys=[(v.meta.episode_id, int(t)) for v, t in zip(views, rows[:, 1], strict=True)],
            state=state,
            actions=actions,
            action_mask=mask,
            adv=adv,
            human=human,
            task=np.array([v.meta.task for v in views]),
            source=np.array([v.meta.source for v in views]),
        )
