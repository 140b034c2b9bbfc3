"""Practice-like episodes with failures, for training and evaluating the reward model in sim.

Demos (`rlpost collect`) are all successes; a reward model also needs failures. This
writes autonomous episodes with their true outcomes (``marked_by="env"``, or
``"sim_operator"`` when a simulated operator supervised) from scripted behaviours that
fail the way practising policies do (EXPERIMENTS.md): routes through the armed hazard,
stalls that hover until the time limit, aimless wandering; and episodes where a stall
is rescued by a simulated operator's takeover (intervention steps flagged).

Behaviours (tag ``behaviour`` in ``EpisodeMeta.extra``):
    expert    the scripted expert choosing the route at random (hazard failures ~25%)
    stall     the expert until a random step, then hovering in place until timeout
    wander    smooth random motion (timeouts at low progress, sometimes the hazard)
    takeover  a stall supervised by a simulated operator who takes over and finishes
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rlpost.data import EpisodeStore
from rlpost.rollout import EpisodePlan, EpisodeRecorder, run_and_close
from rlpost.schema import Observation
from rlpost.sim import (
    ExpertConfig,
    SimConfig,
    SimOperatorConfig,
    SimRobot,
    SimulatedOperator,
    make_expert,
    make_robot,
)

log = logging.getLogger(__name__)

BEHAVIOURS: tuple[str, ...] = ("expert", "stall", "wander", "takeover")


@dataclass
class MixedConfig:
    """What :func:`collect_mixed` records."""

    task: str = "tabletop"
    episodes: int = 100
    out: str = "runs/practice"
    seed: int = 50_000  # episode i uses env seed `seed + i`
    mix: dict[str, float] = field(
        default_factory=lambda: {"expert": 0.4, "stall": 0.35, "wander": 0.1, "takeover": 0.15}
    )
    sim: SimConfig = field(default_factory=SimConfig)
    expert: ExpertConfig = field(default_factory=lambda: ExpertConfig(noise=0.15, route="random"))
    stall_max_fraction: float = 0.35  # a stall starts at a step drawn from [3, this * max_steps)
    robot_id: str = "sim-practice"
    session_id: str = ""
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.mix) - set(BEHAVIOURS)
        if unknown:
            raise ValueError(
                f"collect_mixed: unknown behaviours {sorted(unknown)}; choose from {list(BEHAVIOURS)}"
            )
        if not self.mix or min(self.mix.values()) < 0 or sum(self.mix.values()) <= 0:
            raise ValueError(f"collect_mixed: mix={self.mix} needs non-negative weights with a positive sum")
        if self.episodes < 1:
            raise ValueError(f"collect_mixed: episodes={self.episodes} must be >= 1")


class ScriptedPractice:
    """The behaviours as a rollout actor on one robot: one action per step (rlpost.rollout.Actor)."""

    def __init__(self, robot: SimRobot, cfg: MixedConfig, rng: np.random.Generator) -> None:
        self.expert = make_expert(robot, cfg.expert)
        self.max_steps, self.stall_max_fraction = robot.max_steps, cfg.stall_max_fraction
        self.low, self.high = robot.robot_spec.action_low, robot.robot_spec.action_high
        self.rng = rng
        self.behaviour, self.stall_at, self.t = "expert", 0, 0
        self.velocity = np.zeros(2, np.float32)

    def reset(self, slot: int, episode: EpisodePlan) -> dict[str, str]:
        self.behaviour, self.t = episode.extra["behaviour"], 0
        self.expert.reset(seed=episode.seed, kind="clean")
        self.stall_at = int(self.rng.integers(3, max(4, int(self.stall_max_fraction * self.max_steps))))
        self.velocity = np.zeros(2, np.float32)
        return {}

    def plan(self, slots: Sequence[int], obs: Sequence[Observation]) -> list[np.ndarray]:
        (_slot,) = slots
        if self.behaviour == "expert":
            proposed = self.expert.act()
        elif self.behaviour == "wander":
            self.velocity = np.clip(0.8 * self.velocity + self.rng.normal(0, 0.4, 2), -1, 1).astype(
                np.float32
            )
            proposed = np.array([*self.velocity, self.rng.choice([-1.0, 1.0], p=[0.9, 0.1])], np.float32)
        else:  # stall / takeover: the expert, then hovering from stall_at on
            proposed = self.expert.act()
            if self.t >= self.stall_at:
                proposed[:2] = self.rng.normal(0, 0.03, 2)
        self.t += 1
        return [np.clip(proposed, self.low, self.high).astype(np.float32)[None]]


def collect_mixed(cfg: MixedConfig) -> dict[str, dict[str, int]]:
    """Record ``cfg.episodes`` autonomous episodes into ``cfg.out``.

    Returns:
        behaviour -> outcome -> count.
    """
    sim_cfg = dataclasses.replace(cfg.sim, task=cfg.task)
    robot = make_robot(cfg.task, sim_cfg)
    operator = SimulatedOperator(robot, SimOperatorConfig(robot_id=cfg.robot_id, triggers=("stall",)))
    names = sorted(cfg.mix)
    weights = np.array([cfg.mix[n] for n in names], np.float64)
    rng = np.random.default_rng(cfg.seed)

    def plans() -> Iterator[EpisodePlan]:  # drawn one at a time: the behaviour, then its stall step
        for i in range(cfg.episodes):
            behaviour = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            yield EpisodePlan(
                cfg.seed + i, supervised=behaviour == "takeover", extra={"behaviour": behaviour}
            )

    session = cfg.session_id or f"mixed-{uuid.uuid4().hex[:8]}"
    with EpisodeStore.open(cfg.out) as store:
        episodes = run_and_close(
            [robot],
            ScriptedPractice(robot, cfg, rng),
            plans(),
            total=cfg.episodes,
            desc=f"practice {cfg.task}" if cfg.progress else "",
            operators=[operator],
            recorder=EpisodeRecorder(store, cfg.task, session),
            robot_ids=[cfg.robot_id],
            where="practice",
        )
    counts: dict[str, dict[str, int]] = {}
    for e in episodes:
        by = counts.setdefault(e.extra["behaviour"], {})
        by[e.outcome] = by.get(e.outcome, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    """``python -m reward_models.practice_data task=tabletop episodes=160 out=runs/practice`` (key=value)."""
    import sys

    from omegaconf import OmegaConf

    from rlpost.report import format_table

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = sys.argv[1:] if argv is None else argv
    cfg = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(MixedConfig), OmegaConf.from_dotlist(args))
    )
    counts = collect_mixed(cfg)  # type: ignore[arg-type]
    rows = [{"behaviour": b, **c} for b, c in sorted(counts.items())]
    title = f"practice episodes into {cfg.out}"  # type: ignore[attr-defined]
    print(format_table(rows, ["behaviour", "success", "failure", "timeout"], title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
