"""`rlpost critic-check`: does the critic rank the head's chunks the way their outcomes do?

A simulated robot replays a state exactly (the same env seed and the same executed actions give
the same state), so a chunk's worth can be measured instead of estimated: from each of ``states``
states the policy reached, the head samples ``candidates`` chunks; each is executed from a replay of
that state and the policy acts on to the episode's end, ``repeats`` times on other sampling noise.
The Monte Carlo success of a chunk is its share of successes. The critic is judged by

    spearman       rank correlation of its scores with the Monte Carlo successes, within a state
    chosen / mean / best   Monte Carlo success of the chunk it scores highest, of an average
                   chunk (what N = 1 gets) and of the best chunk (what a perfect critic gets)

    rlpost critic-check policy=runs/demo/pretrain/policy critic=runs/critic/critic.safetensors \\
        sim.n_blocks=1 states=24 'times=[8,40]' candidates=8 repeats=2
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rlpost.data.episode_store import EpisodeStore
from rlpost.evaluation import vla_chunk_fn
from rlpost.policy import ObsBatch, load_checkpoint
from rlpost.policy.best_of_n import BestOfN
from rlpost.policy.chunk_critic import load_critic
from rlpost.rollout import ChunkActor, ChunkFn, EpisodePlan, EpisodeRecorder, PlannedChunk, run_and_close
from rlpost.rollout.acting import Actor
from rlpost.rollout.lockstep import EpisodeRollout
from rlpost.schema import Observation
from rlpost.sim import SimConfig, make_robot, with_policy_cameras


@dataclass
class CriticCheckConfig:
    """Settings of `rlpost critic-check`."""

    checkpoint: str = "runs/demo/pretrain/policy"  # `policy=` on the CLI
    critic: str = "runs/critic/critic.safetensors"
    task: str = "tabletop"
    sim: SimConfig = field(default_factory=SimConfig)
    states: int = 24  # episodes whose states are replayed
    times: list[int] = field(default_factory=lambda: [8, 40])  # steps into each episode
    candidates: int = 8
    repeats: int = 2  # rollouts per candidate (other policy noise)
    risk: float = 1.0  # the critic's score: mean - risk * std of the ensemble
    execute: int = 4
    seed: int = 900_000  # env seeds seed, seed + 1, ...
    num_envs: int = 16
    out: str = ""
    progress: bool = True

    def __post_init__(self) -> None:
        if min(self.states, self.candidates, self.repeats, self.execute, self.num_envs) < 1 or not self.times:
            raise ValueError(
                "critic-check: states, candidates, repeats, execute, num_envs >= 1 and times not empty"
            )
        if any(t < 0 for t in self.times):
            raise ValueError(f"critic-check: times={self.times} must be >= 0")


@dataclass
class ReplayThenAct:
    """Each episode first replays its scripted actions (a state's prefix, then a candidate chunk);
    the policy acts from there on. ``EpisodePlan.extra['job']`` names the script."""

    scripts: dict[str, np.ndarray]  # job -> float32 [n, A]
    chunk_fn: ChunkFn
    execute: int
    pending: dict[int, np.ndarray] = field(default_factory=dict)  # slot -> script not yet planned

    def reset(self, slot: int, episode: EpisodePlan) -> dict[str, str]:
        script = self.scripts[episode.extra["job"]]
        if len(script):
            self.pending[slot] = script
        return {}

    def plan(self, slots: Sequence[int], obs: Sequence[Observation]) -> list[np.ndarray | PlannedChunk]:
        out: dict[int, np.ndarray | PlannedChunk] = {
            i: self.pending.pop(i) for i in slots if i in self.pending
        }
        rest = [(i, o) for i, o in zip(slots, obs, strict=True) if i not in out]
        if rest:
            plans = ChunkActor(self.chunk_fn, self.execute).plan([i for i, _ in rest], [o for _, o in rest])
            out.update({i: p for (i, _), p in zip(rest, plans, strict=True)})
        return [out[i] for i in slots]


@dataclass
class CriticCheck:
    """What `rlpost critic-check` measured (see the module docstring)."""

    states: int  # states with candidates scored (their episode lasted past the time)
    spearman: float  # mean over states whose candidates' outcomes differ (NaN: none differ)
    states_ranked: int  # states the mean is over
    chosen: float
    mean: float
    best: float
    rollouts: int


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = a.argsort().argsort().astype(float), b.argsort().argsort().astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def _rollouts(
    cfg: CriticCheckConfig, plans: list[EpisodePlan], actor: Actor, store: EpisodeStore | None = None
) -> list[EpisodeRollout]:
    robots = [
        make_robot(cfg.task, dataclasses.replace(cfg.sim, task=cfg.task))
        for _ in range(min(cfg.num_envs, len(plans)))
    ]
    recorder = EpisodeRecorder(store, cfg.task, "critic-check") if store is not None else None
    return run_and_close(
        robots, actor, plans, total=len(plans), desc="critic-check" if cfg.progress else "", recorder=recorder
    )


def critic_check(cfg: CriticCheckConfig) -> CriticCheck:
    vla = load_checkpoint(cfg.checkpoint).eval()
    critic = load_critic(cfg.critic)
    pick = BestOfN(vla, critic, cfg.candidates, cfg.risk)  # checks the critic fits the policy
    cfg = dataclasses.replace(cfg, sim=with_policy_cameras(cfg.sim, vla.cfg.cameras))
    gen = torch.Generator().manual_seed(cfg.seed)
    with tempfile.TemporaryDirectory() as d, EpisodeStore.open(Path(d) / "store") as store:
        # 1. the states: the policy's own episodes, recorded
        seeds = [cfg.seed + i for i in range(cfg.states)]
        base = _rollouts(
            cfg, [EpisodePlan(s) for s in seeds], ChunkActor(vla_chunk_fn(vla, gen), cfg.execute), store
        )
        states = []  # (env seed, t, executed prefix, observation)
        for ep in base:
            e = store.read_episode(ep.meta.episode_id)
            for t in cfg.times:
                if t + cfg.execute < e.meta.length:
                    o = (
                        ep.seed,
                        t,
                        e.action[:t],
                        {c: e.images[c][t] for c in e.images},
                        e.state[t],
                        e.meta.instruction,
                    )
                    states.append(o)
    if not states:
        raise ValueError(f"critic-check: no episode lasted past times={cfg.times}")
    # 2. the head's candidates at each state, scored by the critic
    batch = ObsBatch(
        {c: np.stack([s[3][c] for s in states]) for c in states[0][3]},
        np.stack([s[4] for s in states]),
        [s[5] for s in states],
    )
    choice = pick.choose(batch, gen)
    scores = choice.scores.numpy()  # [S, M]
    cands = choice.candidates[:, :, : cfg.execute].numpy()  # the k actions a robot executes of each
    # 3. every candidate from a replay of its state, `repeats` times, the policy acting on after it
    low, high = (
        make_robot(cfg.task, cfg.sim).robot_spec.action_low,
        make_robot(cfg.task, cfg.sim).robot_spec.action_high,
    )
    scripts, plans, owner = {}, [], []
    for i, (seed, _t, prefix, *_rest) in enumerate(states):
        for j in range(cfg.candidates):
            job = f"{i}/{j}"
            scripts[job] = np.concatenate([prefix, np.clip(cands[i, j], low, high)]).astype(np.float32)
            for _ in range(cfg.repeats):
                plans.append(EpisodePlan(seed, extra={"job": job}))
                owner.append((i, j))
    actor = ReplayThenAct(scripts, vla_chunk_fn(vla, gen), cfg.execute)
    done = _rollouts(cfg, plans, actor)
    wins = np.zeros((len(states), cfg.candidates))
    for ep in done:
        i, j = (int(x) for x in ep.extra["job"].split("/"))
        wins[i, j] += ep.outcome == "success"
    mc = wins / cfg.repeats
    ranked = [k for k in range(len(states)) if mc[k].std() > 0]
    spearman = float(np.mean([_spearman(scores[k], mc[k]) for k in ranked])) if ranked else float("nan")
    top = scores.argmax(1)
    return CriticCheck(
        states=len(states),
        spearman=spearman,
        states_ranked=len(ranked),
        chosen=float(mc[np.arange(len(states)), top].mean()),
        mean=float(mc.mean()),
        best=float(mc.max(1).mean()),
        rollouts=len(done),
    )
