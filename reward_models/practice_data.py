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
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from rlpost.data import EpisodeStore
from rlpost.interfaces import observation_from_dict
from rlpost.schema import EpisodeMeta, StepRecord
from rlpost.sim import ExpertConfig, SimConfig, SimOperatorConfig, SimulatedOperator, make_expert, make_robot

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


def collect_mixed(cfg: MixedConfig) -> dict[str, dict[str, int]]:
    """Record ``cfg.episodes`` autonomous episodes into ``cfg.out``.

    Returns:
        behaviour -> outcome -> count.
    """
    sim_cfg = dataclasses.replace(cfg.sim, task=cfg.task)
    robot = make_robot(cfg.task, sim_cfg)
    expert = make_expert(robot, cfg.expert)
    operator = SimulatedOperator(robot, SimOperatorConfig(robot_id=cfg.robot_id, triggers=("stall",)))
    spec = robot.robot_spec
    session = cfg.session_id or f"mixed-{uuid.uuid4().hex[:8]}"
    names = sorted(cfg.mix)
    weights = np.array([cfg.mix[n] for n in names], np.float64)
    rng = np.random.default_rng(cfg.seed)
    counts: dict[str, dict[str, int]] = {}
    with EpisodeStore.open(cfg.out) as store:
        for i in tqdm(range(cfg.episodes), desc=f"practice {cfg.task}", disable=not cfg.progress):
            seed = cfg.seed + i
            behaviour = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            obs, info = robot.reset(seed=seed)
            expert.reset(seed=seed, kind="clean")
            supervised = behaviour == "takeover"
            if supervised:
                operator.reset(seed=seed)
                operator.observe(obs, info)
            stall_at = int(rng.integers(3, max(4, int(cfg.stall_max_fraction * robot.max_steps))))
            velocity = np.zeros(2, np.float32)
            meta = EpisodeMeta(
                episode_id=uuid.uuid4().hex,
                task=cfg.task,
                instruction=str(obs["instruction"]),
                robot_id=cfg.robot_id,
                session_id=session,
                source="autonomous",
                seed=seed,
                start_ns=time.time_ns(),
                extra={"behaviour": behaviour},
            )
            store.begin(meta)
            human, t, marked = False, 0, ""
            while True:
                human_action = None
                if supervised:
                    for cmd in operator.poll():
                        if cmd.kind == "take_over":
                            human = True
                        elif cmd.kind == "hand_back":
                            human = False
                        elif cmd.kind == "human_action":
                            human_action = cmd.action
                o = observation_from_dict(obs, f"practice episode {i}", spec)
                if behaviour == "expert":
                    proposed = expert.act()
                elif behaviour == "wander":
                    velocity = np.clip(0.8 * velocity + rng.normal(0, 0.4, 2), -1, 1).astype(np.float32)
                    proposed = np.array([*velocity, rng.choice([-1.0, 1.0], p=[0.9, 0.1])], np.float32)
                else:  # stall / takeover: the expert, then hovering from stall_at on
                    proposed = expert.act()
                    if t >= stall_at:
                        proposed[:2] = rng.normal(0, 0.03, 2)
                proposed = np.clip(proposed, spec.action_low, spec.action_high).astype(np.float32)
                action = human_action if human and human_action is not None else proposed
                step = StepRecord(
                    images=o.images,
                    state=o.state,
                    action=np.asarray(action, np.float32),
                    policy_action=proposed,
                    intervention=human,
                    policy_version=0,
                    t_ns=time.monotonic_ns(),
                    frame_index=t,
                )
                obs, reward, terminated, truncated, info = robot.step(step.action)
                store.append(meta.episode_id, dataclasses.replace(step, reward=float(reward)))
                t += 1
                if supervised:
                    operator.observe(obs, info, terminated=terminated, truncated=truncated)
                if terminated or truncated:
                    break
            outcome = "success" if info.get("is_success") else "failure" if terminated else "timeout"
            if supervised:
                marks = [c.kind for c in operator.poll() if c.kind in ("mark_success", "mark_failure")]
                marked = marks[-1].removeprefix("mark_") if marks else ""
                if marked == "failure" and outcome == "timeout":
                    marked = "timeout"  # the operator marks a timeout as failure; keep the truth
            store.finish(
                meta.episode_id, outcome=marked or outcome, marked_by="sim_operator" if marked else "env"
            )
            counts.setdefault(behaviour, {}).setdefault(marked or outcome, 0)
            counts[behaviour][marked or outcome] += 1
    robot.close()
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
