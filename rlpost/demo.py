"""`rlpost demo`: the whole loop on one machine, before and after practice.

    collect demos -> pretrain -> eval before (paired seeds) -> warm-up practice (record only)
    -> train the reward model on demos + warm-up episodes (it sees the policy's failures)
    -> practice with simulated operators, labelling and learning -> eval after (same seeds)

Everything lands under ``out`` (demos/, pretrain/, practice/ (the session directory),
reward/, demo_result.json). Each finished stage is recorded in ``out/stages.json``, so
re-running the same command after a crash continues where it stopped.

The nested stage configs' paths (stores, checkpoints, outputs) are set from ``out``
by the pipeline; everything else in them is the user's to override
(``rlpost demo pretrain.steps=2000 practice.budget.episodes=200``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlpost.collect import CollectConfig, collect
from rlpost.compare.stats import EpisodeOutcomes, PairedDiff, paired_bootstrap
from rlpost.evaluation import EvalConfig, EvalResult, evaluate_checkpoint
from rlpost.metrics import LoggerConfig
from rlpost.pretrain import PretrainConfig, pretrain
from rlpost.report import format_table, write_json
from rlpost.session import (
    PracticeConfig,
    RewardTrainConfig,
    Session,
    SessionSummary,
    train_reward,
)

log = logging.getLogger(__name__)

TABLE_COLUMNS = (
    "policy",
    "success",
    "ci95",
    "succ/hour",
    "cycle_s",
    "practice_eps",
    "takeovers/ep",
    "human_steps",
)


@dataclass
class DemoConfig:
    """Settings of `rlpost demo` (the stage configs are the commands' own schemas)."""

    out: str = "runs/demo"
    task: str = "tabletop"
    collect: CollectConfig = field(default_factory=lambda: CollectConfig(episodes=150))
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(episodes=100))
    warmup_episodes: int = 30  # practice episodes recorded before the reward model is trained
    reward: RewardTrainConfig = field(default_factory=lambda: RewardTrainConfig(steps=300))
    practice: PracticeConfig = field(default_factory=PracticeConfig)
    practice_episodes: int = 120  # practice episodes with learning, after the warm-up
    threads: int = 2  # torch threads of the stages that run in this process (pretrain, eval, reward)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        if self.warmup_episodes < 4 or self.practice_episodes < 1:
            raise ValueError(
                f"demo: warmup_episodes={self.warmup_episodes} must be >= 4 (the reward model needs "
                f"failures to learn from) and practice_episodes={self.practice_episodes} >= 1"
            )


@dataclass
class DemoResult:
    """The before/after comparison and what each stage cost."""

    rows: list[dict[str, Any]]
    before: dict[str, Any]
    after: dict[str, Any]
    stage_seconds: dict[str, float]
    wall_s: float
    practice: dict[str, Any]  # the practice session's summary (throughput, broadcast latency)
    # after − before on the same evaluation seeds: {"success"|"succ_per_hour": PairedDiff as a dict}
    paired: dict[str, dict[str, Any]] = field(default_factory=dict)


def paired_change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """After − before, per statistic, with a paired-bootstrap 95% interval over the evaluation seeds.

    Both evaluations ran the same seeds, so the paired interval is much narrower than the
    two Wilson intervals side by side suggest.

    Raises:
        ValueError: an evaluation lacks its per-episode outcomes, or the seeds differ.
    """
    for name, r in (("before", before), ("after", after)):
        if "episode_seeds" not in r:
            raise ValueError(
                f"demo: the {name} evaluation has no per-episode outcomes (a stages.json from an older "
                f"rlpost); delete its eval_{name} entry from stages.json to re-run it"
            )
    if before["episode_seeds"] != after["episode_seeds"]:
        raise ValueError("demo: the before and after evaluations ran different seeds; they cannot be paired")
    n = len(before["episode_seeds"])

    def outcomes(r: dict[str, Any]) -> EpisodeOutcomes:
        return EpisodeOutcomes(
            np.asarray(r["episode_success"], bool),
            np.asarray(r["episode_duration_s"], float),
            np.zeros(n, int),
        )

    diffs = paired_bootstrap(outcomes(after), outcomes(before))
    return {k: dataclasses.asdict(d) for k, d in diffs.items()}


class _Stages:
    """``out/stages.json``: which stages finished, and their results (to continue after a crash)."""

    def __init__(self, out: Path) -> None:
        self.path = out / "stages.json"
        self.done: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def run(self, name: str, fn: Callable[[], Any], seconds: dict[str, float]) -> Any:
        if name in self.done:
            log.info("demo: stage %s already done", name)
            seconds[name] = self.done[name]["seconds"]
            return self.done[name]["result"]
        log.info("demo: stage %s", name)
        t0 = time.perf_counter()
        result = fn()
        seconds[name] = time.perf_counter() - t0
        self.done[name] = {"seconds": seconds[name], "result": result}
        write_json(self.path, self.done)
        return result


def _practice_row(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(episodes)
    steps = sum(e["steps"] for e in episodes)
    return {
        "practice_eps": n,
        "takeovers/ep": sum(e["takeovers"] for e in episodes) / n if n else float("nan"),
        "human_steps": sum(e["intervention_steps"] for e in episodes) / steps if steps else float("nan"),
    }


def _eval_row(name: str, r: dict[str, Any]) -> dict[str, Any]:
    lo, hi = r["success_ci95"]
    return {
        "policy": name,
        "success": r["success_rate"],
        "ci95": f"[{lo:.2f}, {hi:.2f}]",
        "succ/hour": r["successes_per_hour"],
        "cycle_s": r["mean_cycle_time_s"],
    }


def run_demo(cfg: DemoConfig, on_status: Callable[[str], None] | None = None) -> DemoResult:
    """Run the pipeline of the module docstring; returns the before/after table's rows."""
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    stages, seconds = _Stages(out), {}
    t0 = time.perf_counter()
    demos, pre, session_dir = out / "demos", out / "pretrain", out / "practice"
    policy = pre / "policy"
    quiet = dict(progress=False)

    stages.run(
        "collect",
        lambda: dataclasses.asdict(
            collect(dataclasses.replace(cfg.collect, task=cfg.task, out=str(demos), **quiet))
        ),
        seconds,
    )
    pcfg = dataclasses.replace(
        cfg.pretrain, store=str(demos), out=str(pre), task=cfg.task, logger=cfg.logger, threads=cfg.threads
    )
    stages.run("pretrain", lambda: str(pretrain(pcfg).policy_dir), seconds)

    def evaluate(checkpoint: Path) -> dict[str, Any]:
        ecfg = dataclasses.replace(
            cfg.eval, checkpoint=str(checkpoint), task=cfg.task, threads=cfg.threads, **quiet
        )
        r: EvalResult = evaluate_checkpoint(ecfg)
        d = dataclasses.asdict(r)
        episodes = d.pop("per_episode")  # kept compact: what the paired before/after test needs
        d["episode_seeds"] = [e["seed"] for e in episodes]
        d["episode_success"] = [e["outcome"] == "success" for e in episodes]
        d["episode_duration_s"] = [e["duration_s"] for e in episodes]
        return d

    before = stages.run("eval_before", lambda: evaluate(policy), seconds)

    def practise(episodes: int, learn: bool, reward_model: str, resume: bool) -> dict[str, Any]:
        p = dataclasses.replace(
            cfg.practice,
            out=str(session_dir),
            policy_checkpoint=str(policy),
            demos=str(demos),
            task=cfg.task,
            reward_model=reward_model,
            learn=learn,
            resume=resume,
            # The warm-up records the pretrained policy on its own (no operator), so the reward
            # model sees its real failures; practice then runs with the simulated operators.
            actor=dataclasses.replace(
                cfg.practice.actor, sim_operator=learn and cfg.practice.actor.sim_operator
            ),
            budget=dataclasses.replace(cfg.practice.budget, episodes=episodes),
            logger=cfg.logger,
        )
        session = Session(p, on_status=on_status)
        summary: SessionSummary = session.run()
        if summary.stopped_by != "budget":
            raise RuntimeError(f"practice stopped by {summary.stopped_by}; re-run the command to continue")
        d = dataclasses.asdict(summary)
        d["episodes_detail"] = [dataclasses.asdict(e) for e in session.tracker.all]
        return d

    stages.run("warmup", lambda: practise(cfg.warmup_episodes, False, "", False), seconds)
    rcfg = dataclasses.replace(
        cfg.reward,
        store=str(session_dir / "store"),
        policy_checkpoint=str(policy),
        out=str(out / "reward"),
        task=cfg.task,
        threads=cfg.threads,
        logger=cfg.logger,
        **quiet,
    )
    rm = stages.run("reward_model", lambda: str(train_reward(rcfg).checkpoint), seconds)
    total = cfg.warmup_episodes + cfg.practice_episodes
    practice = stages.run("practice", lambda: practise(total, True, rm, True), seconds)
    after_policy = session_dir / "learner" / "checkpoints" / "last"
    if not (after_policy / "config.json").exists():
        raise RuntimeError(
            f"practice published no head ({after_policy} is missing): raise practice_episodes or lower "
            "practice.learner.publish_every"
        )
    after = stages.run("eval_after", lambda: evaluate(after_policy), seconds)

    # takeovers: the first vs the last N practice episodes (the warm-up ran without operators)
    detail, n = practice["episodes_detail"], max(1, min(cfg.warmup_episodes, cfg.practice_episodes // 2))
    rows = [
        _eval_row("pretrained", before) | _practice_row(detail[:n]),
        _eval_row(f"after practice (head v{practice['head_version']})", after) | _practice_row(detail[-n:]),
    ]
    result = DemoResult(
        rows=rows,
        before=before,
        after=after,
        stage_seconds=seconds,
        wall_s=time.perf_counter() - t0,
        practice={k: v for k, v in practice.items() if k != "episodes_detail"},
        paired=paired_change(before, after),
    )
    write_json(out / "demo_result.json", dataclasses.asdict(result))
    return result


def result_table(cfg: DemoConfig, r: DemoResult) -> str:
    """The before/after table the command prints."""
    e = cfg.eval
    title = (
        f"rlpost demo on {cfg.task}: eval {e.episodes} episodes, seeds {e.seed}..{e.seed + e.episodes - 1} "
        f"(the same for both rows); practice_eps/takeovers/human_steps: the first vs the last "
        f"{max(1, min(cfg.warmup_episodes, cfg.practice_episodes // 2))} practice episodes (simulated operators)"
    )
    stages = "  ".join(f"{k} {v:.0f}s" for k, v in r.stage_seconds.items())
    return (
        format_table(r.rows, TABLE_COLUMNS, title)
        + "\n"
        + paired_text(r.paired)
        + f"\nstages: {stages}\nwall: {r.wall_s:.0f} s"
    )


def paired_text(paired: dict[str, dict[str, Any]]) -> str:
    """One line: after − before with paired 95% intervals, '(n.s.)' where the interval covers 0."""
    success, per_hour = PairedDiff(**paired["success"]), PairedDiff(**paired["succ_per_hour"])
    return (
        f"after − before, paired over the same {success.n} episodes (bootstrap 95%): "
        f"success {success.text(3)}, successes/hour {per_hour.text(1)}"
    )
