"""NaN/Inf and out-of-bounds actions, generated, from the policy and from an operator device: never sent
to the robot. NaN/Inf are refused (the robot holds, the event is counted; a device's are refused on the
channel with an error ack); out-of-bounds values are clipped and counted; every step is still stored."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from actors.config import ControlConfig, SafetyConfig
from actors.control_loop import ControlLoop
from actors.operator_channel import OperatorChannel, OperatorClient, OperatorRefused
from actors.safety import SafetyFilter
from rlpost.data.episode_store import EpisodeStore
from rlpost.schema import RobotSpec
from rlpost.sim import make_robot
from tests.support.actor_fakes import ScriptedOperator, ScriptedPolicy, SpyRobot
from tests.support.badinput import tally

pytestmark = [pytest.mark.badinput, pytest.mark.timeout(180)]
SAFETY = SafetyConfig(hold="zero", hold_keep_dims=(2,))
LOW, HIGH = -1.0, 1.0  # the built-in sims' action bounds, every dim
SPEC = RobotSpec(
    cameras={"top": (8, 8)},
    state_dim=6,
    action_dim=3,
    action_low=np.full(3, LOW, np.float32),
    action_high=np.full(3, HIGH, np.float32),
)

value = st.one_of(
    st.sampled_from([np.nan, np.inf, -np.inf]),
    st.floats(-1e30, 1e30).map(np.float32).map(float),
    st.floats(-0.9, 0.9).map(np.float32).map(float),
)
bad_action = st.lists(value, min_size=3, max_size=3).map(lambda v: np.array(v, np.float32))


def is_bad(a: np.ndarray) -> bool:
    return bool(~np.isfinite(a).all() or (np.abs(a) > HIGH).any())


def expected(filter_: SafetyFilter, proposed: np.ndarray) -> tuple[np.ndarray, str]:
    """What the design says the filter sends for ``proposed``, and the event it reports."""
    if not np.isfinite(proposed).all():
        return filter_.hold_action(), "nonfinite"
    return np.clip(proposed, LOW, HIGH), "clipped"


@settings(max_examples=100, deadline=None)
@given(st.lists(bad_action, min_size=1, max_size=6))
def test_the_safety_filter_holds_on_nonfinite_and_clips_out_of_bounds(actions):
    f = SafetyFilter(SPEC, SAFETY)
    f.filter(np.array([0.2, -0.2, 0.7], np.float32))  # a gripper command to keep while holding
    for a in actions:
        assume(is_bad(a))
        want, kind = expected(f, a)
        sent, events = f.filter(a)
        assert np.isfinite(sent).all() and (sent >= LOW).all() and (sent <= HIGH).all()
        np.testing.assert_array_equal(sent, want)
        assert [e.kind for e in events] == [kind]
        tally("actions (policy or device): safety filter", "refused" if kind == "nonfinite" else "handled")


class ChunkPolicy(ScriptedPolicy):
    """Every chunk is the same drawn [H, 3] array (some rows NaN/Inf or out of bounds)."""

    def __init__(self, chunk: np.ndarray) -> None:
        super().__init__(horizon=len(chunk))
        self.chunk = chunk

    def act(self, obs) -> np.ndarray:
        self.calls += 1
        return self.chunk.copy()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunk=st.lists(bad_action, min_size=8, max_size=8).map(np.stack),
    human=st.lists(bad_action, min_size=1, max_size=4),
)
def test_a_whole_episode_with_bad_policy_and_device_actions_sends_none_and_stores_every_step(chunk, human):
    """Policy chunks and (in-process) device actions with NaN/Inf/out-of-bounds values through the loop."""
    script = {3: [("take_over", None), ("human_action", human[0])]}
    for i, a in enumerate(human[1:], start=4):
        script[i] = [("human_action", a)]
    script[4 + len(human)] = [("hand_back", None)]
    op = ScriptedOperator(script)
    with tempfile.TemporaryDirectory() as d, EpisodeStore.open(Path(d)) as store:
        robot = SpyRobot(make_robot("tabletop", max_steps=12, image_size=32))
        loop = ControlLoop(
            robot,
            ChunkPolicy(chunk),
            store,
            control=ControlConfig(realtime=False, execute=4, lead_steps=1, hz=50.0, human_timeout_s=60.0),
            safety=SAFETY,
            operators=[op],
            observers=[op],
            task="tabletop",
        )
        try:
            r = loop.run_episode(seed=0)
        finally:
            loop.close()
        ep = store.read_episode(r.meta.episode_id)
        sent = np.stack(robot.sent)
        assert len(ep.action) == r.steps == len(sent) == 12  # every step stored, none lost
        np.testing.assert_array_equal(ep.action, sent)
        assert np.isfinite(sent).all() and (np.abs(sent) <= HIGH).all()
        # Replay the proposals through a fresh filter: each step did what the design says.
        replay = SafetyFilter(SPEC, SAFETY)
        human_at = {t: cmds[-1][1] for t, cmds in script.items() if cmds[-1][0] == "human_action"}
        current, counted = None, {"nonfinite": 0, "clipped": 0}
        for t in range(12):
            if t in human_at:
                current = human_at[t]
            proposed = current if ep.intervention[t] else ep.policy_action[t]
            want, kind = expected(replay, proposed)
            got, events = replay.filter(proposed)
            np.testing.assert_array_equal(ep.action[t], want)
            np.testing.assert_array_equal(got, want)
            if is_bad(proposed):
                counted[kind] += 1
                source = "an operator device (in-process)" if ep.intervention[t] else "the policy"
                tally(f"actions from {source}: control loop", "refused" if kind == "nonfinite" else "handled")
            assert [e.kind for e in events] == ([kind] if is_bad(proposed) else [])
        assert r.events["nonfinite"] == counted["nonfinite"] and r.events["clipped"] == counted["clipped"]


def test_a_device_sending_nonfinite_or_misshapen_actions_over_the_channel_is_refused_and_counted():
    channel = OperatorChannel("arm-1", action_dim=3)
    pad = OperatorClient(channel.endpoint, "arm-1", "pad-2")
    accepted: list[np.ndarray] = []
    refused = 0

    @settings(max_examples=60, deadline=None)
    @given(
        st.one_of(bad_action, st.lists(value, min_size=0, max_size=6).map(lambda v: np.array(v, np.float32)))
    )
    def one(a):
        nonlocal refused
        assume(is_bad(a) or a.shape != (3,))
        if a.shape != (3,) or not np.isfinite(a).all():
            with pytest.raises(OperatorRefused, match=r"action from operator 'pad-2'.*(NaN/Inf|shape)"):
                pad.send_kind("human_action", a)
            refused += 1
            assert channel.counters.refused == refused
            tally("actions from an operator device: over the channel", "refused")
        else:  # finite but out of bounds: accepted, and the robot's safety filter clips it
            assert pad.send_kind("human_action", a).ok
            accepted.append(a)
            tally("actions from an operator device: over the channel", "handled")

    try:
        one()
        got = [c.action for c in channel.poll()]
        assert len(got) == len(accepted) and channel.counters.received == len(accepted)
        f = SafetyFilter(SPEC, SAFETY)
        for a, g in zip(accepted, got, strict=True):
            np.testing.assert_array_equal(a, g)
            sent, events = f.filter(g)
            np.testing.assert_array_equal(sent, np.clip(a, LOW, HIGH))
            assert [e.kind for e in events] == ["clipped"]
    finally:
        pad.close()
        channel.close()
