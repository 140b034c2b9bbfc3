"""`rlpost eval`: success rate (with a confidence interval), progress, successes per hour, cycle time.

Episodes run in lockstep over ``num_envs`` simulated robots (the rollout engine,
rlpost.rollout) so the policy sees batches (one encode + one sample for every robot that
needs a new chunk). Each robot
executes ``execute`` of the H actions of a chunk, then replans. Episode i uses env
seed ``seed + i``, so two policies evaluated with the same seed face the same
initial states (paired comparisons).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import norm

from rlpost.data.episode_store import EpisodeStore
from rlpost.policy import VLA, ObsBatch, load_checkpoint
from rlpost.policy.best_of_n import BestOfN
from rlpost.policy.checkpoint import apply_head, load_head_file
from rlpost.policy.chunk_critic import ChunkCritic, load_critic
from rlpost.rollout import (
    NO_POLICY_VERSION,
    ChunkActor,
    ChunkFn,
    EpisodePlan,
    EpisodeRecorder,
    SampledBatch,
    run_and_close,
)
from rlpost.schema import Observation
from rlpost.sim import SimConfig, make_robot, with_policy_cameras

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """Settings of `rlpost eval`."""

    checkpoint: str = "runs/pretrain/policy"  # the policy's checkpoint directory (also `policy=` on the CLI)
    # a head file published by a learner (`<learner>/heads/head-NNNNNN.safetensors`) to load into
    # the checkpoint before evaluating: how a session's heads did, one by one, on the same seeds
    head: str = ""
    task: str = "tabletop"
    episodes: int = 100
    seed: int = 100_000  # episode i uses env seed `seed + i` (paired across policies)
    # the policy's sampling-noise stream (-1: `seed`); another stream on the same env seeds shows
    # which outcomes the noise decides
    noise_seed: int = -1
    execute: int = 4  # actions executed from each chunk before replanning (k of H)
    num_envs: int = 16  # simulated robots stepped in lockstep (batched inference)
    sim: SimConfig = field(default_factory=SimConfig)
    out: str = ""  # write the JSON result here when set
    threads: int = 0
    device: str = "cpu"  # torch device for the policy
    progress: bool = True
    # best-of-N acting: a chunk critic (`rlpost train-critic`'s critic.safetensors) ranks `best_of`
    # chunks sampled from one prefix and the robot executes the best by mean - critic_risk * std
    critic: str = ""
    best_of: int = 1
    critic_risk: float = 0.0
    # an episode store to record every evaluation episode into (data for a critic, or for review);
    # its episodes are tagged eval=<seed range> and the acting head's version
    store: str = ""

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.execute < 1 or self.num_envs < 1 or self.best_of < 1:
            raise ValueError(
                f"eval: episodes={self.episodes}, execute={self.execute}, num_envs={self.num_envs}, "
                f"best_of={self.best_of} must be >= 1"
            )
        if self.best_of > 1 and not self.critic:
            raise ValueError(
                f"eval: best_of={self.best_of} needs critic=<critic.safetensors> to rank the chunks"
            )


@dataclass
class EpisodeSummary:
    """One evaluation episode."""

    seed: int
    instruction: str
    outcome: str  # success | failure | timeout
    length: int  # steps
    duration_s: float  # robot time: length / control_hz
    final_progress: float  # privileged progress at the end, [0, 1]
    failure_reason: str = ""  # the env's reason for a failure (e.g. wrong_object, hazard); '' otherwise
    route: str = ""  # built-in tasks: the gap the gripper first crossed the wall's line in ('' if none)


@dataclass
class EvalResult:
    """Aggregate metrics of one policy on one task."""

    task: str
    episodes: int
    success_rate: float
    success_ci95: tuple[float, float]  # Wilson score interval
    mean_progress: float
    successes_per_hour: float  # successes per hour of robot time
    mean_cycle_time_s: float  # mean duration of successful episodes (NaN if none)
    mean_length: float
    outcomes: dict[str, int]
    per_episode: list[EpisodeSummary] = field(repr=False, default_factory=list)
    failure_reasons: dict[str, int] = field(default_factory=dict)  # failures by the env's reason
    routes: dict[str, dict[str, int]] = field(default_factory=dict)  # route -> outcome -> episodes

    def row(self) -> dict[str, object]:
        lo, hi = self.success_ci95
        return {
            "task": self.task,
            "episodes": self.episodes,
            "success": self.success_rate,
            "ci95": f"[{lo:.2f}, {hi:.2f}]",
            "progress": self.mean_progress,
            "succ/hour": self.successes_per_hour,
            "cycle_s": self.mean_cycle_time_s,
            "timeouts": self.outcomes.get("timeout", 0),
            "failures": self.outcomes.get("failure", 0),
            "failure reasons": ", ".join(f"{k} {v}" for k, v in sorted(self.failure_reasons.items())),
            "routes (success)": ", ".join(
                f"{r} {sum(o.values())} ({o.get('success', 0) / sum(o.values()):.2f})"
                for r, o in sorted(self.routes.items())
            ),
        }


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sane at 0 and n, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def vla_chunk_fn(
    vla: VLA, generator: torch.Generator | None = None, noise_scale: float | None = None
) -> ChunkFn:
    """Batched chunk function of a VLA (eval mode, no grad); ``noise_scale`` overrides the
    policy's ``act_noise_scale`` (exploration while practising)."""
    vla.eval()

    def chunks(obs: Sequence[Observation]) -> SampledBatch:
        a, z = vla.act_sampled(ObsBatch.stack(obs), generator=generator, noise_scale=noise_scale)
        return SampledBatch(a.cpu().numpy(), z.cpu().numpy())

    return chunks


def best_of_n_chunk_fn(
    vla: VLA,
    critic: ChunkCritic,
    n: int,
    risk: float,
    generator: torch.Generator | None = None,
    noise_scale: float | None = None,
) -> ChunkFn:
    """Batched chunk function that acts best-of-``n`` with ``critic`` (rlpost.policy.best_of_n)."""
    vla.eval()
    pick = BestOfN(vla, critic, n, risk)

    def chunks(obs: Sequence[Observation]) -> SampledBatch:
        c = pick.choose(ObsBatch.stack(obs), generator, noise_scale)
        return SampledBatch(c.chunks.cpu().numpy(), c.noise.cpu().numpy())

    return chunks


def evaluate(chunk_fn: ChunkFn, cfg: EvalConfig, policy_version: int = NO_POLICY_VERSION) -> EvalResult:
    """Run ``cfg.episodes`` episodes of ``cfg.task`` with ``chunk_fn`` and aggregate (recording
    them into ``cfg.store`` when set, with ``policy_version`` as the acting head)."""
    sim_cfg = dataclasses.replace(cfg.sim, task=cfg.task)
    robots = [make_robot(cfg.task, sim_cfg) for _ in range(min(cfg.num_envs, cfg.episodes))]
    store = EpisodeStore.open(cfg.store) if cfg.store else None
    tags = {"eval": f"{cfg.seed}..{cfg.seed + cfg.episodes - 1}"}
    if cfg.critic:
        tags |= {"best_of": str(cfg.best_of), "critic_risk": f"{cfg.critic_risk:g}"}
    try:
        episodes = run_and_close(
            robots,
            ChunkActor(chunk_fn, cfg.execute),
            [EpisodePlan(cfg.seed + i) for i in range(cfg.episodes)],
            total=cfg.episodes,
            desc=f"eval {cfg.task}" if cfg.progress else "",
            where="eval",
            recorder=EpisodeRecorder(store, cfg.task, "eval", policy_version=policy_version, extra=tags)
            if store is not None
            else None,
        )
    finally:
        if store is not None:
            store.close()
    summaries = [
        EpisodeSummary(
            seed=e.seed,
            instruction=e.instruction,
            outcome=e.outcome,
            length=e.length,
            duration_s=e.duration_s,
            final_progress=e.final_progress,
            failure_reason=e.failure_reason,
            route=e.route,
        )
        for e in episodes
    ]
    return summarize(cfg.task, sorted(summaries, key=lambda e: e.seed))


def summarize(task: str, episodes: list[EpisodeSummary]) -> EvalResult:
    n = len(episodes)
    succ = [e for e in episodes if e.outcome == "success"]
    hours = sum(e.duration_s for e in episodes) / 3600.0
    outcomes: dict[str, int] = {}
    routes: dict[str, dict[str, int]] = {}
    for e in episodes:
        outcomes[e.outcome] = outcomes.get(e.outcome, 0) + 1
        if e.route:
            by = routes.setdefault(e.route, {})
            by[e.outcome] = by.get(e.outcome, 0) + 1
    return EvalResult(
        task=task,
        episodes=n,
        success_rate=len(succ) / n if n else float("nan"),
        success_ci95=wilson_interval(len(succ), n),
        mean_progress=float(np.mean([e.final_progress for e in episodes])) if n else float("nan"),
        successes_per_hour=len(succ) / hours if hours > 0 else float("nan"),
        mean_cycle_time_s=float(np.mean([e.duration_s for e in succ])) if succ else float("nan"),
        mean_length=float(np.mean([e.length for e in episodes])) if n else float("nan"),
        outcomes=outcomes,
        per_episode=episodes,
        failure_reasons=dict(
            collections.Counter(e.failure_reason or "unknown" for e in episodes if e.outcome == "failure")
        ),
        routes=routes,
    )


def evaluate_checkpoint(cfg: EvalConfig) -> EvalResult:
    """Load ``cfg.checkpoint`` and evaluate it (the `rlpost eval` command)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    vla = load_checkpoint(cfg.checkpoint, device=cfg.device)
    if cfg.head:  # refused if it was trained on another backbone (CheckpointError names both)
        apply_head(vla, load_head_file(cfg.head))
    cfg = dataclasses.replace(cfg, sim=with_policy_cameras(cfg.sim, vla.cfg.cameras))
    noise_seed = cfg.seed if cfg.noise_seed < 0 else cfg.noise_seed
    generator = torch.Generator().manual_seed(noise_seed)
    if cfg.critic:
        critic = load_critic(cfg.critic, device=vla._device())
        chunk_fn = best_of_n_chunk_fn(vla, critic, cfg.best_of, cfg.critic_risk, generator)
    else:
        chunk_fn = vla_chunk_fn(vla, generator)
    return evaluate(chunk_fn, cfg, policy_version=vla.head_version)
