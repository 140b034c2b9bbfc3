"""A RobotActor on a real local Ray: the simulated operator takes over over zmq, e-stop, bad messages."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from actors.config import ActorConfig, ControlConfig
from actors.operator_channel import OperatorClient
from actors.robot_actor import RobotActor
from rlpost.data.episode_store import EpisodeStore
from rlpost.sim import SimConfig, SimOperatorConfig
from rlpost.transport import decode, decode_ack, new_socket, recv_frames

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory, request):
    from rlpost.policy import VLA, ExpertConfig, PolicyConfig, TinyBackboneConfig, save_checkpoint

    cfg = PolicyConfig(
        state_dim=6,
        action_dim=3,
        horizon=12,
        num_steps=2,
        cameras=["top"],
        tiny=TinyBackboneConfig(image_size=32, width=32, grid=4, keypoints=8, vision_depth=1, fusion_depth=1),
        expert=ExpertConfig(width=32, depth=1),
    )
    return str(save_checkpoint(VLA(cfg), tmp_path_factory.mktemp("policy") / "vla"))


def expected_actions(n_steps: int, commands) -> tuple[list[bool], list[np.ndarray | None]]:
    """Replay the applied commands: who held control at each step and the person's latest action."""
    human, action = False, None
    flags, actions = [], []
    by_step: dict[int, list] = {}
    for c in commands:
        by_step.setdefault(c.step, []).append(c)
    for t in range(n_steps):
        for c in by_step.get(t, []):
            if c.kind == "take_over":
                human, action = True, None
            elif c.kind == "hand_back":
                human, action = False, None
            elif c.kind == "human_action":
                action = c.action
        flags.append(human)
        actions.append(action if human else None)
    return flags, actions


def test_robot_actor_session_with_takeovers_estop_and_a_malformed_message(ray_session, policy_dir, tmp_path):
    ray = ray_session
    cfg = ActorConfig(
        robot_id="sim-7",
        task="tabletop",
        sim=SimConfig(image_size=32, max_steps=40),
        policy=policy_dir,
        store=str(tmp_path / "store"),
        sim_operator=True,
        sim_operator_cfg=SimOperatorConfig(
            operator_id="sim-op", stall_window=5, reaction_delay_steps=1, takeover_steps=6
        ),
        control=ControlConfig(hz=50.0, realtime=True, execute=4, lead_steps=2),
    )
    actor = ray.remote(max_concurrency=4)(RobotActor).remote(cfg)
    endpoint = ray.get(actor.operator_endpoint.remote(), timeout=60)

    reports = ray.get(actor.run.remote(3), timeout=90)
    store = EpisodeStore.open(tmp_path / "store", recover=False)
    assert len(reports) == 3 and len(store.episodes()) == 3
    took_over = 0
    for r in reports:
        ep = store.read_episode(r.meta.episode_id)
        assert len(ep.action) == r.steps == r.meta.length
        flags, human = expected_actions(r.steps, r.commands)
        assert ep.intervention.tolist() == flags
        for t in np.flatnonzero(ep.intervention):
            if human[t] is not None:
                np.testing.assert_allclose(ep.action[t], np.clip(human[t], -1, 1), rtol=1e-6)
        late = r.events.get("late_chunk", 0)
        assert np.isfinite(ep.policy_action).all(axis=1).sum() >= r.steps - late  # proposals kept beside
        took_over += int(ep.intervention.sum())
        if r.meta.marked_by != "env":
            assert r.meta.marked_by == "sim_operator"
    assert took_over > 0, "the simulated operator never took over"
    status = ray.get(actor.status.remote())
    n_cmds = sum(len(r.commands) for r in reports)
    assert status.commands_received == n_cmds and status.episode == 3 and status.state == "idle"

    # a malformed message is refused with an error, counted, and the actor lives on
    raw = new_socket(zmq.DEALER)
    raw.connect(endpoint)
    raw.send_multipart([b"garbage", b"more"])
    ack = decode_ack(decode(recv_frames(raw, 10.0), sender="test"))
    assert not ack.ok and "not valid msgpack" in ack.error
    raw.close()
    assert ray.get(actor.status.remote()).commands_refused == 1

    # e-stop mid-episode: the episode ends aborted and the latch holds until clear_estop
    person = OperatorClient(endpoint, "sim-7", "ann", ack_timeout_s=10.0)
    running = actor.run.remote(2)
    time.sleep(0.3)
    person.send_kind("estop")
    (stopped,) = ray.get(running, timeout=60)
    assert (stopped.meta.outcome, stopped.meta.marked_by, stopped.end_reason) == (
        "aborted",
        "operator",
        "estop",
    )
    assert ray.get(actor.status.remote()).state == "estopped"
    person.send_kind("reset")
    assert ray.get(actor.run.remote(1), timeout=30) == []  # a reset does not clear it
    person.send_kind("clear_estop")
    (after,) = ray.get(actor.run.remote(1), timeout=60)
    assert after.steps > 0
    final = ray.get(actor.status.remote())
    assert final.state == "idle" and final.commands_refused == 1 and final.episode == 5
    person.close()
    ray.get(actor.close.remote())
    store.close()
