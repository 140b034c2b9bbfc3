"""The safety filter: clip, rate limit, workspace, hold on bad input, and an e-stop latch only an operator clears."""

from __future__ import annotations

import numpy as np
import pytest

from actors.config import SafetyConfig, WorkspaceConfig
from actors.safety import SafetyFilter
from rlpost.schema import RobotSpec


def spec(max_delta=None) -> RobotSpec:
    return RobotSpec(
        cameras={"top": (8, 8)},
        state_dim=4,
        action_dim=3,
        action_low=np.full(3, -1.0, np.float32),
        action_high=np.full(3, 1.0, np.float32),
        max_delta=max_delta,
    )


def kinds(events) -> list[str]:
    return [e.kind for e in events]


def test_out_of_bounds_actions_are_clipped_and_reported():
    f = SafetyFilter(spec())
    a, ev = f.filter(np.array([2.0, -3.0, 0.5], np.float32))
    np.testing.assert_array_equal(a, [1.0, -1.0, 0.5])
    assert kinds(ev) == ["clipped"] and "dims [0, 1]" in ev[0].detail


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_action_is_never_sent_the_filter_holds_and_reports_an_error(bad):
    f = SafetyFilter(spec(), SafetyConfig(hold="zero", hold_keep_dims=(2,)))
    f.filter(np.array([0.3, 0.2, 0.9], np.float32))
    a, ev = f.filter(np.array([bad, 0.0, 0.0], np.float32))
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, [0.0, 0.0, 0.9], rtol=1e-6)  # stopped, gripper kept
    assert kinds(ev) == ["nonfinite"] and "dims [0]" in ev[0].detail


def test_hold_last_repeats_the_last_command_for_position_robots():
    f = SafetyFilter(spec(), SafetyConfig(hold="last"))
    f.filter(np.array([0.3, 0.2, 0.9], np.float32))
    a, ev = f.filter(None)
    np.testing.assert_allclose(a, [0.3, 0.2, 0.9], rtol=1e-6)
    assert kinds(ev) == ["no_action"]


def test_per_step_change_is_limited_by_the_robots_max_delta_or_the_config():
    f = SafetyFilter(spec(max_delta=np.full(3, 0.1, np.float32)))
    f.filter(np.zeros(3, np.float32))
    a, ev = f.filter(np.array([0.5, -0.05, -0.5], np.float32))
    np.testing.assert_allclose(a, [0.1, -0.05, -0.1])
    assert kinds(ev) == ["rate_limited"]
    g = SafetyFilter(spec(max_delta=np.full(3, 0.1, np.float32)), SafetyConfig(max_delta=(0.3,)))
    g.filter(np.zeros(3, np.float32))
    np.testing.assert_allclose(g.filter(np.array([0.5, 0, 0], np.float32))[0], [0.3, 0, 0])


def test_velocity_workspace_stops_motion_further_out_but_allows_coming_back():
    ws = WorkspaceConfig(state_dims=(0, 1), action_dims=(0, 1), low=(0.1, 0.1), high=(0.9, 0.9))
    f = SafetyFilter(spec(), SafetyConfig(workspace=ws))
    at_edge = np.array([0.95, 0.5, 0, 0], np.float32)
    a, ev = f.filter(np.array([0.5, 0.5, 0.0], np.float32), at_edge)
    np.testing.assert_array_equal(a, [0.0, 0.5, 0.0])
    assert kinds(ev) == ["workspace"]
    a, ev = f.filter(np.array([-0.5, 0.5, 0.0], np.float32), at_edge)
    np.testing.assert_array_equal(a, [-0.5, 0.5, 0.0])
    assert ev == []


def test_position_workspace_clips_targets_into_the_box():
    ws = WorkspaceConfig(state_dims=(0,), action_dims=(0,), low=(-0.5,), high=(0.5,), mode="position")
    f = SafetyFilter(spec(), SafetyConfig(workspace=ws))
    a, ev = f.filter(np.array([0.8, 0.0, 0.0], np.float32), np.zeros(4, np.float32))
    assert a[0] == pytest.approx(0.5) and kinds(ev) == ["workspace"]


def test_estop_latches_through_reset_and_only_clear_estop_releases_it():
    f = SafetyFilter(spec(), SafetyConfig(hold="zero"))
    f.estop("ann")
    for _ in range(3):
        a, ev = f.filter(np.array([0.5, 0.5, 0.5], np.float32))
        np.testing.assert_array_equal(a, np.zeros(3))
        assert kinds(ev) == ["estop_hold"] and "ann" in ev[0].detail
    f.reset()
    assert f.estopped
    f.clear_estop()
    a, ev = f.filter(np.array([0.5, 0.5, 0.5], np.float32))
    np.testing.assert_array_equal(a, [0.5, 0.5, 0.5])
    assert ev == []


def test_config_that_does_not_fit_the_robot_is_refused_naming_the_dims():
    with pytest.raises(ValueError, match=r"action dims \[5\]"):
        SafetyFilter(spec(), SafetyConfig(hold_keep_dims=(5,)))
    with pytest.raises(ValueError, match="one entry per"):
        WorkspaceConfig(state_dims=(0,), action_dims=(), low=(0.0,), high=(1.0,))
