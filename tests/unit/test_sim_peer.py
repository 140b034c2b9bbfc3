"""The peer-suite adapter turns a real-physics env (gym-pusht) into an rlpost Robot."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rlpost.interfaces import Robot, observation_from_dict
from rlpost.schema import SchemaError
from rlpost.sim import PeerConfig, make_peer, make_robot

needs_pusht = pytest.mark.skipif(
    importlib.util.find_spec("gym_pusht") is None,
    reason="gym-pusht is not installed (optional extra: pip install 'rlpost[peers]')",
)


@needs_pusht
def test_pusht_observations_follow_rlpost_schema():
    robot = make_robot("pusht")
    assert isinstance(robot, Robot)
    obs, info = robot.reset(seed=0)
    for _ in range(3):
        assert robot.observation_space.contains(obs)
        observation_from_dict(obs, "test", robot.robot_spec)
        assert obs["images"]["top"].shape == (64, 64, 3) and obs["images"]["top"].dtype == np.uint8
        assert obs["instruction"] == PeerConfig().instruction
        assert np.all(np.abs(obs["state"]) <= 1.0)  # agent position normalised from [0, 512]
        assert not info["is_success"] and 0.0 <= info["progress"] <= 1.0
        obs, _, _, _, info = robot.step(np.array([0.2, -0.3], dtype=np.float32))


@needs_pusht
def test_pusht_actions_in_minus_one_one_span_the_peer_action_box():
    robot = make_peer("pusht")
    low, high = robot.env.action_space.low, robot.env.action_space.high
    np.testing.assert_allclose(robot.to_peer_action(np.array([-1, -1], np.float32)), low)
    np.testing.assert_allclose(robot.to_peer_action(np.array([1, 1], np.float32)), high)
    np.testing.assert_allclose(robot.to_peer_action(np.array([0, 0], np.float32)), (low + high) / 2)
    np.testing.assert_allclose(robot.to_peer_action(np.array([5, -5], np.float32)), [high[0], low[1]])


@needs_pusht
def test_pusht_moves_its_agent_toward_the_commanded_point():
    robot = make_peer("pusht")
    obs, _ = robot.reset(seed=1)
    target = np.array([0.5, -0.5], dtype=np.float32)
    for _ in range(10):
        obs, *_ = robot.step(target)
    assert np.linalg.norm(obs["state"] - target) < 0.1


@needs_pusht
def test_pusht_is_deterministic_under_seed():
    actions = np.random.default_rng(0).uniform(-1, 1, (15, 2)).astype(np.float32)
    frames = []
    for _ in range(2):
        robot = make_peer("pusht")
        obs, _ = robot.reset(seed=3)
        trace = [obs["images"]["top"]]
        for a in actions:
            trace.append(robot.step(a)[0]["images"]["top"])
        frames.append(np.stack(trace))
    np.testing.assert_array_equal(frames[0], frames[1])


@needs_pusht
def test_pusht_bad_action_raises_schema_error_naming_the_peer():
    robot = make_peer("pusht")
    robot.reset(seed=0)
    with pytest.raises(SchemaError, match=r"peer 'pusht' step 0: action has shape \(3,\), expected \(2\)"):
        robot.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(SchemaError, match="NaN"):
        robot.step(np.array([np.nan, 0.0], dtype=np.float32))


def test_missing_peer_package_says_what_to_install():
    cfg = PeerConfig(name="fake", module="rlpost_no_such_peer_module", package_hint="fake-suite==1.0")
    with pytest.raises(ModuleNotFoundError, match=r"fake-suite==1\.0.*rlpost\[peers\]"):
        make_peer(cfg=cfg)


def test_unknown_peer_or_field_suggests_the_nearest():
    with pytest.raises(ValueError, match="did you mean 'pusht'"):
        make_peer("pushtt")
    with pytest.raises(ValueError, match="did you mean 'instruction'"):
        make_peer("pusht", instructon="push it")
