"""Behaviour of the built-in simulated robots that policies, actors and users rely on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rlpost.interfaces import Robot, observation_from_dict
from rlpost.schema import SchemaError
from rlpost.sim import ExpertConfig, SimConfig, benchmark_sim, make_expert, make_robot, with_policy_cameras
from rlpost.sim.world import HAZARD, WALL

TASK_NAMES = ["tabletop", "multistage"]


def _expert_for_block(robot, block: int, **cfg):
    """An expert steered to ``block`` instead of the instructed one (a policy ignoring language)."""
    expert = make_expert(robot, ExpertConfig(noise=0.0, **cfg))
    expert.reset(seed=0, kind="clean")

    def act(_obs=None):
        s = robot.sim_state()
        fake = dataclasses.replace(s, layout=dataclasses.replace(s.layout, target_block=block))
        return expert.act(fake)

    return act


def _run(robot, act, seed=None):
    if seed is not None:
        robot.reset(seed=seed)
    while True:
        obs, reward, term, trunc, info = robot.step(act())
        if term or trunc:
            return obs, reward, term, trunc, info


@pytest.mark.parametrize("task", TASK_NAMES)
@pytest.mark.parametrize("cameras", [("top",), ("top", "wrist")])
def test_observations_match_declared_spaces_and_robot_spec(task, cameras):
    robot = make_robot(task, image_size=48, cameras=cameras)
    assert isinstance(robot, Robot)
    obs, info = robot.reset(seed=1)
    for _ in range(3):
        assert robot.observation_space.contains(obs)
        observation_from_dict(obs, "test", robot.robot_spec)
        assert set(obs["images"]) == set(cameras)
        for img in obs["images"].values():
            assert img.dtype == np.uint8 and img.shape == (48, 48, 3)
        assert obs["state"].dtype == np.float32 and obs["state"].shape == (robot.robot_spec.state_dim,)
        assert isinstance(obs["instruction"], str) and obs["instruction"]
        assert {"is_success", "is_failure", "progress", "object_positions"} <= set(info)
        assert info["object_positions"].dtype == np.float32
        assert 0.0 <= info["progress"] <= 1.0
        obs, _, _, _, info = robot.step(robot.action_space.sample())
    assert robot.robot_spec.action_dim == 3
    assert np.all(robot.robot_spec.action_low == -1) and np.all(robot.robot_spec.action_high == 1)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_same_seed_and_actions_give_identical_observations(task):
    actions = np.random.default_rng(0).uniform(-1, 1, (60, 3)).astype(np.float32)
    runs = []
    for _ in range(2):
        robot = make_robot(task, cameras=("top", "wrist"), drop_prob=1.0)
        obs, _ = robot.reset(seed=7)
        frames = [obs]
        for a in actions:
            obs, _, term, trunc, _ = robot.step(a)
            frames.append(obs)
            if term or trunc:
                break
        runs.append(frames)
    assert len(runs[0]) == len(runs[1])
    for a, b in zip(*runs, strict=True):
        assert a["instruction"] == b["instruction"]
        np.testing.assert_array_equal(a["state"], b["state"])
        for cam in a["images"]:
            np.testing.assert_array_equal(a["images"][cam], b["images"][cam])


def test_different_seeds_give_different_scenes():
    robot = make_robot("tabletop")
    tops = [robot.reset(seed=s)[0]["images"]["top"] for s in range(5)]
    assert all(not np.array_equal(tops[0], t) for t in tops[1:])


@pytest.mark.parametrize(
    "action, fragment",
    [
        (np.array([0.0, np.nan, 1.0], dtype=np.float32), "NaN"),
        (np.zeros(2, dtype=np.float32), "shape (2,)"),
        (np.zeros((1, 3), dtype=np.float32), "shape (1, 3)"),
        (np.zeros(3, dtype=np.float64), "dtype float64"),
        ([0.0, 0.0, 0.0], "numpy array"),
    ],
)
def test_bad_actions_raise_schema_error_naming_the_field_and_shape(action, fragment):
    robot = make_robot("tabletop")
    robot.reset(seed=0)
    with pytest.raises(SchemaError, match="action") as err:
        robot.step(action)
    assert fragment in str(err.value)
    assert "tabletop" in str(err.value)


def test_step_before_reset_or_after_the_end_asks_for_reset():
    robot = make_robot("tabletop", max_steps=10)
    with pytest.raises(RuntimeError, match="reset"):
        robot.step(np.zeros(3, dtype=np.float32))
    robot.reset(seed=0)
    _, _, term, trunc, _ = _run(robot, lambda: np.zeros(3, dtype=np.float32))
    assert trunc and not term
    with pytest.raises(RuntimeError, match="reset"):
        robot.step(np.zeros(3, dtype=np.float32))


def test_timeout_truncates_at_the_step_limit_and_every_step_costs():
    robot = make_robot("multistage", max_steps=25, step_cost=0.02)
    robot.reset(seed=3)
    rewards = []
    for _ in range(25):
        _, r, term, trunc, info = robot.step(np.zeros(3, dtype=np.float32))
        rewards.append(r)
    assert trunc and not term and not info["is_success"] and not info["is_failure"]
    assert rewards == pytest.approx([-0.02] * 25)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_instruction_names_the_block_that_counts(task):
    robot = make_robot(task, n_blocks=3, hazard_fail_prob=0.0)
    for seed in range(5):
        obs, _ = robot.reset(seed=seed)
        lay = robot.sim_state().layout
        assert f"the {lay.block_colors[lay.target_block]} block" in obs["instruction"]
        _, _, _, _, info = _run(robot, _expert_for_block(robot, lay.target_block))
        assert info["is_success"]


@pytest.mark.parametrize("task", TASK_NAMES)
def test_bringing_a_block_that_was_not_named_fails_and_never_succeeds(task):
    robot = make_robot(task, n_blocks=3, hazard_fail_prob=0.0)
    outcomes = []
    for seed in range(12):
        robot.reset(seed=seed)
        wrong = (robot.sim_state().layout.target_block + 1) % 3
        _, _, _, _, info = _run(robot, _expert_for_block(robot, wrong))
        outcomes.append((info["is_success"], info["failure_reason"]))
    assert not any(s for s, _ in outcomes)
    assert all(reason == "wrong_object" for _, reason in outcomes)


def test_right_block_in_a_ring_that_was_not_named_fails():
    robot = make_robot("tabletop", n_targets=3, hazard_fail_prob=0.0)
    robot.reset(seed=2)
    expert = make_expert(robot, ExpertConfig(noise=0.0))
    expert.reset(seed=0, kind="clean")
    lay = robot.sim_state().layout
    assert f"the {lay.ring_colors[lay.target_ring]} ring" in robot.instruction
    wrong_ring = (lay.target_ring + 1) % 3

    def act():
        s = robot.sim_state()
        return expert.act(
            dataclasses.replace(s, layout=dataclasses.replace(s.layout, target_ring=wrong_ring))
        )

    _, _, term, _, info = _run(robot, act)
    assert term and info["is_failure"] and info["failure_reason"] == "wrong_target"


def test_entering_the_hazard_fails_exactly_when_it_is_armed():
    robot = make_robot("tabletop", hazard_fail_prob=0.5)
    expert = make_expert(robot, ExpertConfig(noise=0.0, route="hazard"))
    armed, failed = [], []
    for seed in range(30):
        robot.reset(seed=seed)
        expert.reset(seed=seed, kind="clean")
        _, _, _, _, info = _run(robot, expert.act)
        armed.append(robot.sim_state().layout.hazard_armed)
        failed.append(info["failure_reason"] == "hazard")
        assert info["is_success"] != failed[-1]
    assert armed == failed
    assert 5 <= sum(armed) <= 25  # armed in about half the episodes


def test_the_wall_blocks_the_gripper():
    robot = make_robot("tabletop", hazard_fail_prob=0.0)
    robot.reset(seed=0)
    # Go to the wall's height, then push right into it for many steps.
    for _ in range(30):
        g = robot.sim_state().gripper
        robot.step(np.array([0.0, np.sign(0.55 - g[1]), -1.0], dtype=np.float32))
    for _ in range(20):
        robot.step(np.array([1.0, 0.0, -1.0], dtype=np.float32))
    g = robot.sim_state().gripper
    assert WALL[1] <= g[1] <= WALL[3] and g[0] < WALL[0]


def test_carrying_too_fast_drops_the_block_and_it_must_be_grasped_again():
    robot = make_robot("multistage", drop_prob=1.0, hazard_fail_prob=0.0, n_blocks=1)
    robot.reset(seed=4)
    expert = make_expert(robot, ExpertConfig(noise=0.0))
    expert.reset(seed=0, kind="clean")
    while robot.sim_state().holding < 0:
        robot.step(expert.act())
    held_progress = robot.sim_state().progress
    _, _, _, _, info = robot.step(np.array([1.0, 0.0, 1.0], dtype=np.float32))  # full speed, still closed
    s = robot.sim_state()
    assert info["dropped"] and s.holding == -1 and s.need_reopen
    assert info["stage"] == 0 and info["progress"] < held_progress
    # Still closed over the block: no grasp until the gripper opens.
    block = s.blocks[0]
    robot.step(np.concatenate([(block - s.gripper) / 0.07, [1.0]]).astype(np.float32))
    assert robot.sim_state().holding == -1
    robot.step(np.array([0.0, 0.0, -1.0], dtype=np.float32))
    robot.step(np.array([0.0, 0.0, 1.0], dtype=np.float32))
    assert robot.sim_state().holding == 0


def test_multistage_goes_through_its_stages_and_progress_rises():
    robot = make_robot("multistage", hazard_fail_prob=0.0)
    robot.reset(seed=5)
    expert = make_expert(robot, ExpertConfig(noise=0.0))
    expert.reset(seed=0, kind="clean")
    stages, progress = [], []
    while True:
        _, _, term, trunc, info = robot.step(expert.act())
        stages.append(info["stage"])
        progress.append(info["progress"])
        if term or trunc:
            break
    assert info["is_success"]
    assert sorted(set(stages)) == [0, 1, 2] and stages == sorted(stages)
    assert progress[-1] == 1.0 and np.all(np.diff(progress) > -1e-6)
    assert progress[stages.index(2)] >= 2 / 3 - 1e-6


def test_pressing_the_button_first_does_nothing():
    robot = make_robot("multistage", wall=False, hazard_fail_prob=0.0)
    robot.reset(seed=1)
    button = robot.sim_state().layout.button_pos
    for _ in range(40):
        g = robot.sim_state().gripper
        d = (button - g) / 0.07
        robot.step(np.array([*np.clip(d, -1, 1), 1.0], dtype=np.float32))
    s = robot.sim_state()
    assert np.allclose(s.gripper, button, atol=0.01)
    assert not s.done and s.stage == 0


def test_wrist_camera_follows_the_gripper():
    robot = make_robot("tabletop", cameras=("top", "wrist"), wall=False, hazard_fail_prob=0.0)
    obs, _ = robot.reset(seed=0)
    for _ in range(5):
        white = np.argwhere(np.all(obs["images"]["wrist"] == 255, axis=-1))
        assert len(white) > 0
        centre = white.mean(axis=0)
        assert np.all(np.abs(centre - 32) <= 3)
        obs, *_ = robot.step(np.array([0.8, 0.3, -1.0], dtype=np.float32))


def test_hazard_is_drawn_only_when_it_can_fail():
    top_armed = make_robot("tabletop").reset(seed=0)[0]["images"]["top"]
    top_safe = make_robot("tabletop", hazard_fail_prob=0.0).reset(seed=0)[0]["images"]["top"]
    r, c = int(0.1 * 64), int(0.5 * 64)
    assert HAZARD[3] > 0.1
    assert tuple(top_armed[r, c]) != tuple(top_safe[r, c])


def test_make_robot_unknown_names_suggest_the_nearest():
    with pytest.raises(ValueError, match="did you mean 'tabletop'"):
        make_robot("tabeltop")
    with pytest.raises(ValueError, match="did you mean 'image_size'"):
        make_robot("tabletop", imagesize=32)
    with pytest.raises(ValueError, match="for task 'tabletop'"):
        make_robot("multistage", SimConfig(task="tabletop"))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"cameras": ("top", "wrist"), "image_size": 63}, "divisible by wrist_zoom"),
        ({"wall": False}, "with wall=False set hazard_fail_prob=0"),
        ({"task": "multistage", "n_targets": 2}, "only for tabletop"),
        ({"cameras": ("tpo",)}, "did you mean 'top'"),
        ({"cameras": ()}, "at least one camera"),
        ({"image_size": 16}, "too small"),
    ],
)
def test_contradictory_configs_fail_with_a_sentence(kwargs, fragment):
    with pytest.raises(ValueError, match="SimConfig") as err:
        SimConfig(**kwargs)
    assert fragment in str(err.value)


def test_task_defaults_fill_unset_fields_only():
    assert SimConfig(task="multistage").resolved().max_steps == 140
    assert SimConfig(task="tabletop", max_steps=33).resolved().max_steps == 33
    assert make_robot("tabletop").max_steps == 80


def test_benchmark_reports_steps_per_second():
    out = benchmark_sim("multistage", steps=200)
    assert out["steps"] == 200 and out["steps_per_s"] > 0 and out["episodes"] >= 1
    assert out["cameras"] == ["top"] and out["image_size"] == 64


def test_a_sim_driven_by_a_policy_renders_exactly_the_policy_cameras():
    sim = with_policy_cameras(SimConfig(cameras=("top",)), ["wrist", "top"])
    obs, _ = make_robot("tabletop", sim).reset(seed=0)
    assert sorted(obs["images"]) == ["top", "wrist"]
    with pytest.raises(ValueError, match="unknown camera 'side'"):
        with_policy_cameras(SimConfig(), ["top", "side"])
