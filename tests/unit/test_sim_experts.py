"""Scripted experts: demos that succeed, imperfect demos that are measurably worse, honest labels."""

from __future__ import annotations

import numpy as np
import pytest

from rlpost.sim import DemoInfo, ExpertConfig, make_expert, make_robot
from rlpost.sim.world import GRASP_RADIUS, distance


def _demo(robot, expert, seed: int, kind: str | None = None) -> tuple[DemoInfo, dict, int, float]:
    """One demo: (its DemoInfo, final info, length, closest approach to its decoy block)."""
    robot.reset(seed=seed)
    demo = expert.reset(seed=seed, kind=kind)
    closest = np.inf
    steps = 0
    while True:
        _, _, term, trunc, info = robot.step(expert.act())
        steps += 1
        s = robot.sim_state()
        if demo.decoy_block >= 0 and s.holding < 0:
            closest = min(closest, distance(s.gripper, s.blocks[demo.decoy_block]))
        if term or trunc:
            return demo, info, steps, closest


@pytest.mark.parametrize("task", ["tabletop", "multistage"])
def test_expert_succeeds_at_least_95_percent_with_default_noise_and_imperfect_demos(task):
    robot = make_robot(task)
    expert = make_expert(robot, ExpertConfig(imperfect_rate=0.4))
    results = [_demo(robot, expert, seed) for seed in range(40)]
    success = np.mean([info["is_success"] for _, info, _, _ in results])
    assert success >= 0.95
    kinds = {demo.kind for demo, _, _, _ in results}
    assert "clean" in kinds and len(kinds) >= 3


@pytest.mark.parametrize("kind", ["slow", "hesitant", "wrong_object_first"])
def test_imperfect_demos_take_measurably_longer_than_clean_ones(kind):
    robot = make_robot("tabletop")
    expert = make_expert(robot)
    clean = [_demo(robot, expert, s, "clean") for s in range(30)]
    worse = [_demo(robot, expert, s, kind) for s in range(30)]  # same scenes, paired
    assert all(d.kind == kind and d.imperfect for d, _, _, _ in worse)
    assert np.mean([info["is_success"] for _, info, _, _ in worse]) >= 0.95
    clean_len = np.mean([n for _, _, n, _ in clean])
    worse_len = np.mean([n for _, _, n, _ in worse])
    assert worse_len >= 1.2 * clean_len, (kind, clean_len, worse_len)


def test_wrong_object_first_demos_visit_another_block_before_recovering():
    robot = make_robot("tabletop", n_blocks=3)
    expert = make_expert(robot)
    for seed in range(10):
        demo, info, _, closest = _demo(robot, expert, seed, "wrong_object_first")
        assert demo.decoy_block != robot.sim_state().layout.target_block
        assert closest < 0.05 and info["is_success"]


@pytest.mark.parametrize("task", ["tabletop", "multistage"])
def test_missed_grasp_demos_close_short_of_the_block_then_reopen_and_succeed(task):
    robot = make_robot(task)
    expert = make_expert(robot, ExpertConfig(noise=0.05))
    for seed in range(10):
        robot.reset(seed=seed)
        assert expert.reset(seed=seed, kind="missed_grasp").kind == "missed_grasp"
        empty_closes, reopened, info = 0, False, {}
        for _ in range(robot.max_steps):
            _, _, term, trunc, info = robot.step(expert.act())
            s = robot.sim_state()
            if s.grip_closed and s.holding < 0 and s.stage == 0:
                empty_closes += 1
                tb = s.layout.target_block
                assert distance(s.gripper, s.blocks[tb]) > GRASP_RADIUS  # a real miss, not a grasp
            elif empty_closes and not s.grip_closed:
                reopened = True
            if term or trunc:
                break
        assert empty_closes >= 2 and reopened and info["is_success"], (seed, empty_closes, info)


def test_each_demo_reports_its_kind_at_the_configured_rate():
    robot = make_robot("tabletop")
    expert = make_expert(robot, ExpertConfig(imperfect_rate=0.5, imperfect_kinds=("slow", "hesitant")))
    kinds = []
    for seed in range(100):
        robot.reset(seed=seed)
        kinds.append(expert.reset(seed=seed).kind)
    assert set(kinds) == {"clean", "slow", "hesitant"}
    assert 0.35 <= np.mean([k != "clean" for k in kinds]) <= 0.65
    assert expert.info.as_tags()["demo_kind"] == kinds[-1]


def test_oracle_route_splits_demos_between_gaps_by_the_hidden_hazard():
    robot = make_robot("multistage", hazard_fail_prob=0.5)
    expert = make_expert(robot)
    routes, armed = [], []
    for seed in range(40):
        robot.reset(seed=seed)
        routes.append(expert.reset(seed=seed).route)
        armed.append(robot.sim_state().layout.hazard_armed)
    assert routes == ["bottom" if a else "top" for a in armed]
    assert 0.25 <= np.mean([r == "top" for r in routes]) <= 0.75


def test_safe_route_avoids_the_hazard_and_random_route_sometimes_fails():
    robot = make_robot("tabletop", hazard_fail_prob=0.5)
    safe = make_expert(robot, ExpertConfig(route="safe"))
    assert all(_demo(robot, safe, s)[1]["is_success"] for s in range(15))
    blind = make_expert(robot, ExpertConfig(route="random"))
    reasons = [_demo(robot, blind, s)[1]["failure_reason"] for s in range(30)]
    assert "hazard" in reasons


def test_info_reports_the_gap_the_episode_crossed_the_wall_in():
    robot = make_robot("tabletop", hazard_fail_prob=0.5)
    for route, gap in (("safe", "bottom"), ("hazard", "top")):
        expert = make_expert(robot, ExpertConfig(route=route, imperfect_rate=0.0))
        for seed in range(6):
            robot.reset(seed=seed)
            demo = expert.reset(seed=seed)
            seen = []
            while True:
                _, _, term, trunc, info = robot.step(expert.act())
                seen.append(info["route"])
                if term or trunc:
                    break
            # '' until the gripper reaches the wall's line, then the gap, for the rest of the episode
            assert demo.route == gap and seen[0] == "" and seen[-1] == gap, (route, seed)
            assert set(seen[seen.index(gap) :]) == {gap}
    robot.reset(seed=0)
    assert robot.step(np.zeros(3, np.float32))[4]["route"] == ""


def test_expert_is_deterministic_under_seed():
    runs = []
    for _ in range(2):
        robot = make_robot("multistage")
        expert = make_expert(robot, ExpertConfig(imperfect_rate=1.0, noise=0.2))
        robot.reset(seed=11)
        expert.reset(seed=11)
        trace = []
        for _ in range(30):
            a = expert.act()
            trace += [a, robot.step(a)[0]["state"]]
        runs.append(np.concatenate(trace))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_expert_actions_are_float32_within_bounds():
    robot = make_robot("tabletop")
    expert = make_expert(robot, ExpertConfig(noise=2.0))
    robot.reset(seed=0)
    expert.reset(seed=0)
    for _ in range(20):
        a = expert.act()
        assert a.dtype == np.float32 and a.shape == (3,) and np.all(np.abs(a) <= 1.0)
        robot.step(a)


def test_expert_needs_a_built_in_sim_and_a_reset():
    with pytest.raises(TypeError, match="built-in sim robot"):
        make_expert(object())  # type: ignore[arg-type]
    expert = make_expert(make_robot("tabletop"))
    with pytest.raises(RuntimeError, match="reset"):
        expert.act()


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"noise": -0.1}, "noise"),
        ({"imperfect_rate": 1.5}, "imperfect_rate"),
        ({"imperfect_kinds": ("slwo",)}, "did you mean 'slow'"),
        ({"route": "shortest"}, "unknown route"),
        ({"slow_factor": 1.0}, "slower"),
        ({"imperfect_rate": 0.3, "imperfect_kinds": ()}, "imperfect_kinds is empty"),
    ],
)
def test_contradictory_expert_configs_fail_with_a_sentence(kwargs, fragment):
    with pytest.raises(ValueError, match="ExpertConfig") as err:
        ExpertConfig(**kwargs)
    assert fragment in str(err.value)
