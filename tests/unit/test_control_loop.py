"""The control loop on a sim robot, no Ray: every step stored, chunks, holds, interventions, episode ends."""

from __future__ import annotations

import numpy as np
import pytest

from actors.config import ControlConfig, SafetyConfig
from actors.control_loop import ControlLoop, EStopLatched
from actors.weights import LatestWeights
from rlpost.data.episode_store import EpisodeStore
from rlpost.sim import make_robot
from tests.support.actor_fakes import FailingPolicy, NaNPolicy, ScriptedOperator, ScriptedPolicy, SpyRobot

SIM_SAFETY = SafetyConfig(hold="zero", hold_keep_dims=(2,))


@pytest.fixture
def store(tmp_path):
    with EpisodeStore.open(tmp_path / "store") as s:
        yield s


def make_loop(store, policy=None, *, robot=None, operator=None, max_steps=40, weights=None, **control):
    robot = robot or SpyRobot(make_robot("tabletop", max_steps=max_steps, image_size=32))
    kw = dict(realtime=False, execute=4, lead_steps=1, hz=50.0)
    kw.update(control)
    ops = [operator] if operator else []
    return ControlLoop(
        robot,
        policy or ScriptedPolicy(),
        store,
        control=ControlConfig(**kw),
        safety=SIM_SAFETY,
        operators=ops,
        observers=ops,
        weights=weights,
        task="tabletop",
    )


def test_every_step_is_stored_with_action_policy_action_version_and_timestamps(store):
    loop = make_loop(store)
    r = loop.run_episode(seed=3)
    ep = store.read_episode(r.meta.episode_id)
    assert r.meta.outcome == "timeout" and r.meta.marked_by == "env" and r.end_reason == "env"
    assert len(ep.action) == r.steps == 40 == len(loop.robot.sent)
    np.testing.assert_array_equal(ep.frame_index, np.arange(40))
    np.testing.assert_array_equal(ep.action, np.stack(loop.robot.sent))  # stored == sent
    np.testing.assert_array_equal(ep.action, ep.policy_action)  # in bounds: unchanged
    assert not ep.intervention.any() and (ep.policy_version == 0).all()
    assert set(np.diff(ep.t_ns)) == {20_000_000}  # simulated time: exactly one 50 Hz period per step
    loop.close()


def test_chunks_switch_every_k_steps_to_the_index_aligned_with_the_observation_step(store):
    loop = make_loop(store, max_steps=12, execute=4, lead_steps=1)
    ep = store.read_episode(loop.run_episode(seed=0).meta.episode_id)
    call = np.rint(ep.policy_action[:, 0] * 1000).astype(int)
    index = np.rint(ep.policy_action[:, 1] * 100).astype(int)
    assert call.tolist() == [1] * 4 + [2] * 4 + [3] * 4
    assert index.tolist() == [0, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 4]
    loop.close()


@pytest.mark.timeout(30)
def test_late_inference_holds_position_and_records_the_event_in_realtime(store):
    # the second chunk takes 0.3 s at 50 Hz: about 15 steps with nothing fresh to execute
    policy = ScriptedPolicy(delays={2: 0.3})
    loop = make_loop(store, policy, max_steps=30, realtime=True)
    r = loop.run_episode(seed=0)
    ep = store.read_episode(r.meta.episode_id)
    held = np.isnan(ep.policy_action).all(axis=1)
    assert r.events["late_chunk"] == held.sum() >= 8
    assert r.events["no_action"] == held.sum()
    np.testing.assert_allclose(ep.action[held][:, :2], 0.0)  # stopped
    np.testing.assert_allclose(ep.action[held][:, 2], 0.5, rtol=1e-6)  # gripper kept
    assert not held[:4].any() and held[4]  # held from the step the second chunk was due
    loop.close()


def test_late_inference_holds_in_simulated_time_when_the_model_exceeds_the_wait(store):
    loop = make_loop(store, ScriptedPolicy(delays={2: 0.3}), max_steps=12, nonrealtime_wait_s=0.05)
    r = loop.run_episode(seed=0)
    assert r.events["late_chunk"] >= 1
    loop.close()


def test_nan_from_the_policy_is_never_sent_the_robot_holds_and_it_is_counted(store):
    loop = make_loop(store, NaNPolicy(), max_steps=10)
    r = loop.run_episode(seed=0)
    sent = np.stack(loop.robot.sent)
    assert np.isfinite(sent).all()
    # NaN at chunk indices 2-4: steps 2, 3 (chunk 1), 5, 6, 7 (chunk 2 runs indices 1-4), 9 (chunk 3)
    assert r.events["nonfinite"] == 6
    ep = store.read_episode(r.meta.episode_id)
    assert np.isnan(ep.policy_action[2, 0])  # the proposal is recorded honestly
    loop.close()


def test_a_policy_exception_is_recorded_held_and_retried(store):
    loop = make_loop(store, FailingPolicy(), max_steps=10)
    r = loop.run_episode(seed=0)
    assert r.events["policy_error"] == 1 and "model exploded" in r.policy_errors[0]
    assert r.steps == 10 and r.chunks >= 2
    loop.close()


def test_takeover_steps_are_flagged_and_keep_the_policys_proposal(store):
    human = np.array([-0.3, 0.4, 1.0], np.float32)
    op = ScriptedOperator(
        {
            3: [("take_over", None), ("human_action", human)],
            4: [("human_action", human * 0.5)],
            6: [("hand_back", None)],
        }
    )
    loop = make_loop(store, operator=op, max_steps=12)
    r = loop.run_episode(seed=0)
    ep = store.read_episode(r.meta.episode_id)
    # a command the operator issues after k steps takes effect at frame k
    assert ep.intervention.tolist() == [False] * 3 + [True] * 3 + [False] * 6
    np.testing.assert_allclose(ep.action[3], human)
    np.testing.assert_allclose(ep.action[4:6], [human * 0.5] * 2)  # zero-order hold of the stream
    assert np.isfinite(ep.policy_action[3:6]).all()
    assert not np.allclose(ep.policy_action[3], ep.action[3])
    assert r.intervention_steps == 3
    loop.close()


def test_takeover_without_a_human_action_holds_instead_of_running_the_policy(store):
    op = ScriptedOperator({2: [("take_over", None)]})
    loop = make_loop(store, operator=op, max_steps=10)
    ep = store.read_episode(loop.run_episode(seed=0).meta.episode_id)
    np.testing.assert_allclose(ep.action[2:, :2], 0.0)
    assert ep.intervention[2:].all() and not ep.intervention[:2].any()
    loop.close()


@pytest.mark.parametrize(
    ("kind", "outcome", "reason"),
    [
        ("mark_success", "success", "operator_mark"),
        ("mark_failure", "failure", "operator_mark"),
        ("abort", "aborted", "abort"),
        ("reset", "aborted", "reset"),
    ],
)
def test_operator_ends_the_episode_with_its_outcome(store, kind, outcome, reason):
    loop = make_loop(store, operator=ScriptedOperator({5: [(kind, None)]}))
    r = loop.run_episode(seed=0)
    assert (r.meta.outcome, r.meta.marked_by, r.end_reason, r.meta.length) == (outcome, "operator", reason, 5)
    loop.close()


def test_estop_holds_ends_the_episode_and_latches_until_clear_estop(store):
    op = ScriptedOperator({5: [("estop", None)]})
    loop = make_loop(store, operator=op)
    r = loop.run_episode(seed=0)
    ep = store.read_episode(r.meta.episode_id)
    assert (r.meta.outcome, r.end_reason, r.steps) == ("aborted", "estop", 6)
    np.testing.assert_allclose(ep.action[5, :2], 0.0)  # the last command sent was a hold
    assert r.events["estop_hold"] == 1
    op.script = {}
    with pytest.raises(EStopLatched, match="clear_estop"):
        loop.run_episode(seed=1)
    op.queue.append(op.sent[0].__class__("reset", "robot-0", "person", 99))
    with pytest.raises(EStopLatched):
        loop.run_episode(seed=1)  # a reset does not clear it
    op.queue.append(op.sent[0].__class__("clear_estop", "robot-0", "person", 100))
    assert loop.wait_for_clear_estop(1.0)
    assert loop.run_episode(seed=1).meta.outcome == "timeout"
    loop.close()


def test_pause_records_nothing_and_resume_replans(store):
    op = ScriptedOperator({2: [("pause", None)]})
    loop = make_loop(store, operator=op, max_steps=10)
    orig_poll, calls = op.poll, {"n": 0}

    def poll():
        calls["n"] += 1
        if calls["n"] == 10:  # a few paused ticks later
            op.script = {op.step: [("resume", None)]}
            op._emit(op.step)
        return orig_poll()

    op.poll = poll
    r = loop.run_episode(seed=0)
    assert r.steps == 10 and loop.worker.policy.calls >= 3
    loop.close()


def test_a_pause_sent_between_episodes_holds_the_next_episode_at_its_start(store):
    from rlpost.schema import OperatorCommand

    robot = SpyRobot(make_robot("tabletop", max_steps=10, image_size=32))
    op = ScriptedOperator({})
    loop = make_loop(store, robot=robot, operator=op, max_steps=10)
    loop.run_episode(seed=0)
    op.queue.append(OperatorCommand("pause", "robot-0", "console", 1, 0))  # clicked while resetting
    orig_poll, seen = op.poll, {"n": 0, "moved_while_paused": None}

    def poll():
        seen["n"] += 1
        if seen["n"] == 8:  # some paused ticks later, the operator resumes
            seen["moved_while_paused"] = len(robot.sent)  # reset() cleared it
            op.queue.append(OperatorCommand("resume", "robot-0", "console", 2, 0))
        return orig_poll()

    op.poll = poll
    r = loop.run_episode(seed=1)
    assert seen["moved_while_paused"] == 0 and r.steps == 10
    assert loop.stale_commands == 0
    loop.close()


def test_operator_mark_at_the_end_wins_over_the_env(store):
    op = ScriptedOperator({10: [("mark_success", None)]})
    r = make_loop(store, operator=op, max_steps=10).run_episode(seed=0)
    assert (r.meta.outcome, r.meta.marked_by) == ("success", "operator")


def test_robot_disconnect_ends_the_episode_aborted_with_every_step_kept(store):
    robot = SpyRobot(make_robot("tabletop", max_steps=40, image_size=32), disconnect_at=7)
    loop = make_loop(store, robot=robot)
    r = loop.run_episode(seed=0)
    assert (r.meta.outcome, r.meta.marked_by, r.end_reason) == ("aborted", "none", "robot_disconnected")
    ep = store.read_episode(r.meta.episode_id)
    assert len(ep.action) == 8 and np.isnan(ep.reward[-1]) and np.isfinite(ep.reward[:-1]).all()
    loop.close()


def test_newer_head_weights_are_picked_up_between_chunks(store):
    weights = LatestWeights()
    policy = ScriptedPolicy()
    loop = make_loop(store, policy, weights=weights, max_steps=16)
    weights.offer({"w": np.zeros(1, np.float32)}, 7)
    ep = store.read_episode(loop.run_episode(seed=0).meta.episode_id)
    assert policy.loaded == [7]
    assert set(ep.policy_version.tolist()) == {7}
    assert loop.worker.weight_loads == 1
    loop.close()


def test_an_error_mid_episode_still_finishes_it_with_the_steps_so_far(store):
    class Boom(SpyRobot):
        def step(self, action):
            if len(self.sent) == 3:
                raise ValueError("driver bug")
            return super().step(action)

    loop = make_loop(store, robot=Boom(make_robot("tabletop", max_steps=20, image_size=32)))
    with pytest.raises(ValueError, match="driver bug"):
        loop.run_episode(seed=0)
    (meta,) = store.episodes()
    # The step handed to the failing driver is kept (recorded before the robot acts); its result is unknown.
    assert (meta.outcome, meta.length) == ("aborted", 4)
    reward = store.read_episode(meta.episode_id).reward
    assert np.isfinite(reward[:3]).all() and np.isnan(reward[3])
    loop.close()
