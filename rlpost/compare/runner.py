"""`rlpost compare`: every method from one pretrained checkpoint, equal robot time, paired seeds.

For each task, each operator setting (simulated operators taking over, or pure self-practice)
and each training seed, every method runs the same schedule::

    repeat rounds:   practise N episodes (env seeds shared by all methods) -> label them
                     -> U head updates (learning methods) -> evaluate on the fixed eval seeds

All practice lands in one episode store per task (one session id per method, operator
setting and seed; the learner's replay reads only its own session and the demos), so the
budgets can be checked from the store itself: every method must hold the same number of
practice episodes, or the comparison is refused.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from learner.config import LearnerConfig
from learner.edit_actor import fit_edit_actor
from learner.learner import Learner
from learner.noise_actor import fit_noise_actor
from learner.train_critic import fit_on_stores
from reward_models.checkpoint import load_reward_checkpoint
from reward_models.features import EpisodeFeatures
from reward_models.labeler import Labeler
from rlpost.compare.config import CompareConfig, distills, method_mode
from rlpost.compare.critic_acting import EDIT_METHOD, NOISE_METHOD, CriticActing, acting_for, uses_critic
from rlpost.compare.practice import PracticeStats, practice
from rlpost.data.episode_store import EpisodeStore
from rlpost.evaluation import EvalConfig, EvalResult, evaluate, vla_chunk_fn
from rlpost.metrics import MetricsLogger
from rlpost.policy import VLA, load_checkpoint
from rlpost.policy.edit_actor import EditSpec
from rlpost.policy.noise_actor import NoiseSpec
from rlpost.schema import noise_scale_tag
from rlpost.session import import_episodes
from rlpost.sim import with_policy_cameras

log = logging.getLogger(__name__)


@dataclass
class RoundRecord:
    """One round of one run: its practice and the evaluation after its updates."""

    round: int
    practice_episodes: int
    practice_robot_s: float
    practice_successes: int
    takeovers: int
    human_steps: int
    updates: int  # head updates so far in this run
    eval_success: list[bool]  # per eval episode, in eval-seed order
    eval_duration_s: list[float]
    eval_seeds: list[int]
    critic: dict[str, float] = field(default_factory=dict)  # critic methods: the fits' diagnostics


@dataclass
class RunRecord:
    """One method x task x operator setting x seed."""

    task: str
    takeovers: bool
    method: str
    seed: int
    session_id: str
    rounds: list[RoundRecord] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def practice_episodes(self) -> int:
        return sum(r.practice_episodes for r in self.rounds)

    @property
    def practice_robot_s(self) -> float:
        return sum(r.practice_robot_s for r in self.rounds)


def session_id(takeovers: bool, method: str, seed: int) -> str:
    return f"{'operator' if takeovers else 'self'}-{method}-s{seed}"


def eval_record(res: EvalResult) -> tuple[list[bool], list[float], list[int]]:
    eps = sorted(res.per_episode, key=lambda e: e.seed)
    return [e.outcome == "success" for e in eps], [e.duration_s for e in eps], [e.seed for e in eps]


class TaskBench:
    """What every run of one task shares: the store with the demos, the base policy, its baseline
    evaluation, the reward-model labeler and the feature cache directory."""

    def __init__(self, cfg: CompareConfig, task: str) -> None:
        self.cfg, self.task = cfg, task
        self.dir = Path(cfg.out) / task
        self.store = EpisodeStore.open(self.dir / "store")
        copied = import_episodes(cfg.demos, self.store, task=task)
        n_demos = sum(1 for m in self.store.episodes(task=task) if m.source == "demo")
        if n_demos == 0:
            raise ValueError(f"compare: {cfg.demos} holds no demonstrations of task {task!r}")
        log.info("compare %s: %d demonstrations (%d imported now)", task, n_demos, copied)
        self.labeler: Labeler | None = None
        if cfg.reward_model:
            vla = load_checkpoint(cfg.policy_checkpoint)
            self.labeler = Labeler(
                load_reward_checkpoint(cfg.reward_model),
                EpisodeFeatures(vla.backbone.freeze(), self.store),
            )
            # as in a session: demonstrations are labelled too, so advantage modes replay them
            self.labeler.label([m.episode_id for m in self.store.episodes(task=task) if m.source == "demo"])

    def eval_cfg(self) -> EvalConfig:
        c = self.cfg
        return EvalConfig(
            checkpoint=c.policy_checkpoint,
            task=self.task,
            episodes=c.eval_episodes,
            seed=c.eval_seed,
            execute=c.execute,
            num_envs=c.num_envs,
            sim=c.sim,
            progress=False,
        )

    def evaluate(self, vla: VLA, seed: int, acting: CriticActing | None = None) -> EvalResult:
        """``vla`` on the eval seeds; with ``acting``, as a critic method acts."""
        gen = torch.Generator().manual_seed(seed)
        return evaluate(vla_chunk_fn(vla, gen) if acting is None else acting.chunk_fn(gen), self.eval_cfg())

    def fit_acting(self, method: str, vla: VLA, sid: str, seed: int) -> tuple[CriticActing, dict[str, float]]:
        """A fresh chunk critic for ``vla`` on the demos and session ``sid``'s practice so far (and,
        for the edit method, an edit actor against it); returns how to act and the fits' diagnostics."""
        c = self.cfg
        run = fit_on_stores(
            vla,
            [self.store],
            self.task,
            c.critic,
            seed,
            keep=lambda m: m.source == "demo" or m.session_id == sid,
            features_dir=self.dir / "features",
        )
        critic, fit, data = run.critic, run.fit, run.data
        metrics = fit.metrics()
        actor, noise_actor = None, None
        if method == NOISE_METHOD:
            spec = NoiseSpec(
                critic.spec.prefix_width,
                critic.spec.state_dim,
                vla.cfg.horizon,
                critic.spec.action_dim,
                bound=c.noise.bound,
                width=c.noise.width,
                backbone_fingerprint=critic.spec.backbone_fingerprint,
                version=vla.head_version,
            )
            noise_actor, noise_fit = fit_noise_actor(vla, run.prefixes, data, critic, spec, c.noise, seed)
            metrics |= noise_fit.metrics()
        if method == EDIT_METHOD:
            spec = EditSpec(
                critic.spec.prefix_width,
                critic.spec.state_dim,
                critic.spec.action_dim,
                critic.spec.chunk,
                bound=c.edit.bound,
                width=c.edit.width,
                backbone_fingerprint=critic.spec.backbone_fingerprint,
                version=vla.head_version,
            )
            actor, edit_fit = fit_edit_actor(data, critic, spec, c.edit, seed, data.human)
            metrics |= edit_fit.metrics()
        log.info(
            "compare %s %s: critic on %d episodes, held-out AUC %.2f, candidate spread %.3f",
            self.task, sid, fit.episodes, fit.auc_matched, fit.candidate_spread,
        )  # fmt: skip
        return acting_for(method, vla, critic, c, actor, noise_actor), metrics


def learner_config(cfg: CompareConfig, method: str, sid: str) -> LearnerConfig:
    """The shared learner settings with the method's mode; replay reads only this run's session."""
    base = cfg.learner
    replay = dataclasses.replace(base.replay, sessions=[sid])
    if method == "demo_only":
        replay = dataclasses.replace(replay, demo_fraction=1.0)
    if method == "fpo":  # a policy gradient learns from the latest policy's own episodes only
        replay = dataclasses.replace(replay, demo_fraction=0.0, recent_episodes=cfg.episodes_per_round)
    # publishing is not what is compared: ship once per round (the checkpoint is the record)
    return dataclasses.replace(
        base, mode=method_mode(method), replay=replay, publish_every=cfg.updates_per_round
    )


def run_one(
    cfg: CompareConfig,
    bench: TaskBench,
    method: str,
    takeovers: bool,
    seed: int,
    baseline: list[EvalResult],
    metrics: MetricsLogger,
    first_step: int = 0,
) -> RunRecord:
    """One method's whole schedule (see the module docstring). Its rounds are logged at steps
    ``first_step + 1 ...``: one logger serves every run, and wandb drops a step below its last."""
    t0 = time.perf_counter()
    sid = session_id(takeovers, method, seed)
    rec = RunRecord(bench.task, takeovers, method, seed, sid)
    run_dir = bench.dir / "runs" / sid
    learner: Learner | None = None
    distill = distills(method)
    acting: CriticActing | None = None
    if method_mode(method) is None:
        vla = load_checkpoint(cfg.policy_checkpoint)
    else:
        learner = Learner(
            learner_config(cfg, method, sid),
            bench.store,
            cfg.policy_checkpoint,
            run_dir,
            seed=seed,
            features_dir=bench.dir / "features",
        )
        vla = learner.shipped  # what acts and is evaluated (the averaged head with learner.ema_decay)
    if uses_critic(method):  # the first round acts with a critic of the demonstrations alone
        acting = bench.fit_acting(method, vla, sid, 1009 * seed)[0]
    n = cfg.episodes_per_round
    for r in range(cfg.rounds):
        noise_seed = 7919 * seed + r  # the same sampling noise stream for every method
        vla.eval()  # the learner leaves its live policy in train mode (dropout, if configured)
        seeds = [cfg.practice_seed + 100_000 * seed + r * n + i for i in range(n)]
        gen = torch.Generator().manual_seed(noise_seed)
        st: PracticeStats = practice(
            vla_chunk_fn(vla, gen, cfg.practice_noise_scale)
            if acting is None
            else acting.chunk_fn(gen, cfg.practice_noise_scale, practice=True),
            bench.task,
            cfg.sim,
            seeds,
            bench.store,
            operator=cfg.operator if takeovers else None,
            policy_version=vla.head_version,
            execute=cfg.execute,
            num_envs=cfg.num_envs,
            session_id=sid,
            extra=noise_scale_tag(cfg.practice_noise_scale),
        )
        if learner is not None:
            if learner.cfg.needs_labels:
                if bench.labeler is None:
                    raise ValueError(f"compare: method {method} needs reward_model=")
                bench.labeler.label(list(st.episode_ids))
            learner.train(cfg.updates_per_round)
            vla.eval()
        fit: dict[str, float] = {}
        if acting is not None:  # refit on everything so far; it acts in the next round's practice too
            acting, fit = bench.fit_acting(method, vla, sid, 1009 * seed + r + 1)
        if learner is None and acting is None:
            res = baseline[r]
        else:  # a distilling method's head is evaluated alone: it must carry what best-of-N found
            res = bench.evaluate(vla, noise_seed, None if distill else acting)
        success, duration, eval_seeds = eval_record(res)
        rec.rounds.append(
            RoundRecord(
                round=r + 1,
                practice_episodes=st.episodes,
                practice_robot_s=st.robot_seconds,
                practice_successes=st.successes,
                takeovers=st.takeovers,
                human_steps=st.human_steps,
                updates=learner.step if learner is not None else 0,
                eval_success=success,
                eval_duration_s=duration,
                eval_seeds=eval_seeds,
                critic=fit,
            )
        )
        metrics.log(
            {
                f"compare/{sid}/{bench.task}/success": float(np.mean(success)),
                f"compare/{sid}/{bench.task}/practice_success": st.successes / max(st.episodes, 1),
                f"compare/{sid}/{bench.task}/robot_h": rec.practice_robot_s / 3600,
                f"compare/{sid}/{bench.task}/round": r + 1,
            },
            first_step + r + 1,
        )
    rec.wall_s = time.perf_counter() - t0
    return rec


def check_budgets(bench: TaskBench, runs: list[RunRecord]) -> dict[str, dict[str, float]]:
    """Practice episodes and robot seconds per session, counted from the store; every run of a
    task must hold the same number of practice episodes.

    Raises:
        RuntimeError: the budgets differ (the comparison would not be fair).
    """
    counts: dict[str, dict[str, float]] = {}
    for m in bench.store.episodes(task=bench.task):
        if m.source == "demo":
            continue
        c = counts.setdefault(m.session_id, {"episodes": 0, "robot_s": 0.0, "steps": 0})
        c["episodes"] += 1
        c["steps"] += m.length
    for run in runs:
        got = counts.get(run.session_id, {"episodes": 0})["episodes"]
        if got != run.practice_episodes:
            raise RuntimeError(
                f"compare {bench.task}: session {run.session_id} stored {got} practice episodes, "
                f"its run reported {run.practice_episodes}"
            )
    episodes = {run.session_id: run.practice_episodes for run in runs}
    if len(set(episodes.values())) > 1:
        raise RuntimeError(f"compare {bench.task}: unequal practice budgets {episodes}")
    for run in runs:
        counts[run.session_id]["robot_s"] = run.practice_robot_s
    return counts


PATH_KEYS = ("out", "policy_checkpoint", "demos", "reward_model")


def recorded_config(cfg: CompareConfig) -> dict[str, Any]:
    """The config as ``compare.json`` records it: paths made absolute, so that comparisons run
    from different working directories on the same checkpoint still pair in ``compare-merge``."""
    doc = dataclasses.asdict(cfg)
    for k in PATH_KEYS:
        if doc.get(k):
            doc[k] = str(Path(doc[k]).resolve())
    return doc


def run_compare(cfg: CompareConfig) -> dict[str, Any]:
    """Run every method and return the raw records (tables and plots: rlpost.compare.report)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLogger(
        dataclasses.replace(cfg.logger, group=cfg.logger.group or f"compare-{out.name}"),
        out,
        "compare",
        dataclasses.asdict(cfg),
    )
    base = load_checkpoint(cfg.policy_checkpoint)
    # the simulated robots render the cameras the policy reads (practice and evaluation alike)
    cfg = dataclasses.replace(cfg, sim=with_policy_cameras(cfg.sim, base.cfg.cameras))
    runs: list[RunRecord] = []
    budgets: dict[str, Any] = {}
    total = len(cfg.tasks) * len(cfg.takeovers) * cfg.seeds * len(cfg.methods)
    bar = tqdm(total=total, desc="compare", disable=not cfg.progress, dynamic_ncols=True)
    try:
        for task in cfg.tasks:
            bench = TaskBench(cfg, task)
            # the untouched policy's evaluation per round (same noise seeds as the others)
            baselines = {
                s: [bench.evaluate(base, 7919 * s + r) for r in range(cfg.rounds)] for s in range(cfg.seeds)
            }
            task_runs = []
            for takeovers in cfg.takeovers:
                for s in range(cfg.seeds):
                    for method in cfg.methods:
                        bar.set_postfix_str(f"{task} {session_id(takeovers, method, s)}")
                        done = len(runs) + len(task_runs)
                        rec = run_one(
                            cfg, bench, method, takeovers, s, baselines[s], metrics, done * cfg.rounds
                        )
                        task_runs.append(rec)
                        bar.update(1)
            budgets[task] = check_budgets(bench, task_runs)
            runs.extend(task_runs)
            bench.store.close()
    finally:
        bar.close()
        metrics.close()
    return {
        "config": recorded_config(cfg),
        "runs": [dataclasses.asdict(r) for r in runs],
        "budgets": budgets,
    }
