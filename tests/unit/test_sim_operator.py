"""The simulated operator steps in the way a person would, speaks only in OperatorCommands, and marks outcomes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rlpost.interfaces import OperatorInput
from rlpost.rollout.episode import run_episode
from rlpost.schema import OperatorCommand
from rlpost.sim import (
    ExpertConfig,
    SimOperatorConfig,
    SimulatedOperator,
    make_expert,
    make_robot,
)


def zero_policy(_obs):
    return np.zeros(3, dtype=np.float32)


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(start, length) of each run of True."""
    out, start = [], None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i - start))
            start = None
    return out


@pytest.mark.parametrize("delay", [0, 3])
def test_operator_takes_over_a_stall_after_the_reaction_delay_and_hands_back(delay):
    robot = make_robot("tabletop")
    cfg = SimOperatorConfig(stall_window=6, reaction_delay_steps=delay, takeover_steps=5, max_takeovers=1)
    operator = SimulatedOperator(robot, cfg)
    assert isinstance(operator, OperatorInput)
    result = run_episode(robot, zero_policy, operator, seed=0)

    (takeover,) = operator.takeovers
    assert takeover.trigger == "stall"
    assert takeover.noticed_step == 6  # six steps without progress
    assert takeover.start_step == takeover.noticed_step + delay
    assert _runs(result.interventions) == [(takeover.start_step, 5)]
    assert takeover.end_step == takeover.start_step + 5
    kinds = [c.kind for c in result.commands]
    assert kinds[:7] == ["take_over", *["human_action"] * 5, "hand_back"]


def test_human_actions_are_the_experts_float32_actions_and_commands_are_well_formed():
    robot = make_robot("multistage")
    operator = SimulatedOperator(robot, SimOperatorConfig(robot_id="arm-3", operator_id="sim-ann"))
    result = run_episode(robot, zero_policy, operator, seed=1)
    assert result.commands, "a stalled robot must draw the operator in"
    for cmd in result.commands:
        assert isinstance(cmd, OperatorCommand)
        cmd.validate("test", action_dim=3)
        assert cmd.robot_id == "arm-3" and cmd.operator_id == "sim-ann"
        assert (cmd.action is not None) == (cmd.kind == "human_action")
    seqs = [c.seq for c in result.commands]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    actions = np.stack([c.action for c in result.commands if c.kind == "human_action"])
    assert actions.dtype == np.float32 and np.abs(actions[:, :2]).max() > 0.3  # it moves the robot


@pytest.mark.parametrize("task", ["tabletop", "multistage"])
def test_repeated_takeovers_rescue_a_stalled_policy_and_are_marked_success(task):
    robot = make_robot(task)
    operator = SimulatedOperator(robot)
    results = [run_episode(robot, zero_policy, operator, seed=s) for s in range(10)]
    assert all(r.outcome == "success" and r.mark == "success" for r in results)
    assert all(0 < np.mean(r.interventions) < 1 for r in results)


def test_without_interventions_a_timeout_is_marked_failure_or_left_unmarked():
    robot = make_robot("tabletop", max_steps=20)
    marked = run_episode(robot, zero_policy, SimulatedOperator(robot, SimOperatorConfig(triggers=())), seed=0)
    assert marked.outcome == "timeout" and marked.mark == "failure"
    assert [c.kind for c in marked.commands] == ["mark_failure"]
    cfg = SimOperatorConfig(triggers=(), mark_timeout_as_failure=False)
    unmarked = run_episode(robot, zero_policy, SimulatedOperator(robot, cfg), seed=0)
    assert unmarked.mark == "" and unmarked.commands == []


def _armed_seeds(robot, n: int) -> list[int]:
    out = []
    for seed in range(100):
        robot.reset(seed=seed)
        if robot.sim_state().layout.hazard_armed:
            out.append(seed)
        if len(out) == n:
            return out
    raise AssertionError("too few armed seeds")


def test_operator_marks_failure_when_the_episode_fails():
    robot = make_robot("tabletop")
    risky = make_expert(robot, ExpertConfig(route="hazard", noise=0.0))
    operator = SimulatedOperator(robot, SimOperatorConfig(triggers=()))
    seed = _armed_seeds(robot, 1)[0]
    result = run_episode(robot, lambda _o: risky.act(), operator, seed=seed, reset_fn=risky.reset)
    assert result.outcome == "failure" and result.failure_reason == "hazard"
    assert result.mark == "failure"


def test_operator_steers_away_from_the_hazard_before_the_robot_enters_it():
    robot = make_robot("tabletop")
    risky = make_expert(robot, ExpertConfig(route="hazard", noise=0.0))
    cfg = SimOperatorConfig(triggers=("hazard",), reaction_delay_steps=0, takeover_steps=30)
    operator = SimulatedOperator(robot, cfg)
    for seed in _armed_seeds(robot, 8):
        result = run_episode(robot, lambda _o: risky.act(), operator, seed=seed, reset_fn=risky.reset)
        assert [t.trigger for t in operator.takeovers][:1] == ["hazard"]
        assert result.outcome == "success", (seed, result.failure_reason)


def test_operator_takes_the_wrong_block_away_and_fetches_the_named_one():
    robot = make_robot("tabletop", hazard_fail_prob=0.0)
    confused = make_expert(robot, ExpertConfig(noise=0.0))

    def grab_wrong_block(_obs):
        s = robot.sim_state()
        wrong = (s.layout.target_block + 1) % len(s.blocks)
        return confused.act(dataclasses.replace(s, layout=dataclasses.replace(s.layout, target_block=wrong)))

    cfg = SimOperatorConfig(triggers=("wrong_object",), reaction_delay_steps=1, takeover_steps=60)
    operator = SimulatedOperator(robot, cfg)
    for seed in range(5):
        result = run_episode(robot, grab_wrong_block, operator, seed=seed, reset_fn=confused.reset)
        assert operator.takeovers[0].trigger == "wrong_object"
        assert result.outcome == "success" and result.mark == "success"


def test_max_takeovers_caps_interventions_per_episode():
    robot = make_robot("multistage")
    operator = SimulatedOperator(robot, SimOperatorConfig(max_takeovers=2, takeover_steps=3))
    result = run_episode(robot, zero_policy, operator, seed=0)
    assert len(operator.takeovers) == 2 and len(_runs(result.interventions)) == 2


def test_observing_after_the_end_requires_a_reset():
    robot = make_robot("tabletop", max_steps=10)
    operator = SimulatedOperator(robot, SimOperatorConfig(triggers=()))
    run_episode(robot, zero_policy, operator, seed=0)
    obs, info = robot.reset(seed=1)
    with pytest.raises(RuntimeError, match="reset"):
        operator.observe(obs, info)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"triggers": ("stal",)}, "did you mean 'stall'"),
        ({"takeover_steps": 0}, "takeover_steps"),
        ({"reaction_delay_steps": -1}, "reaction_delay_steps"),
        ({"expert": ExpertConfig(imperfect_rate=0.5)}, "imperfect_rate=0"),
    ],
)
def test_contradictory_operator_configs_fail_with_a_sentence(kwargs, fragment):
    with pytest.raises(ValueError, match="SimOperatorConfig") as err:
        SimOperatorConfig(**kwargs)
    assert fragment in str(err.value)
