"""The robot bridge with robot-server in a real subprocess: same episode as in-process, kills, reconnects."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import zmq

from actors.config import BridgeConfig, ControlConfig, SafetyConfig
from actors.control_loop import ControlLoop
from actors.zmq_robot import RobotDisconnected, RobotError, ZmqRobot
from rlpost.data.episode_store import EpisodeStore
from rlpost.sim import make_robot
from rlpost.transport import decode, new_socket, recv_frames
from tests.support.actor_fakes import ScriptedPolicy, SpyRobot
from tests.support.robot_servers import start_server

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server():
    proc, endpoint = start_server()
    yield proc, endpoint
    proc.kill()
    proc.wait(10)


def loop_for(robot, store) -> ControlLoop:
    return ControlLoop(
        robot,
        ScriptedPolicy(),
        store,
        control=ControlConfig(realtime=False, execute=4, lead_steps=1, hz=50.0),
        safety=SafetyConfig(hold="zero", hold_keep_dims=(2,)),
        task="tabletop",
    )


def test_a_sim_behind_robot_server_gives_the_same_episode_as_in_process(server, tmp_path):
    _, endpoint = server
    with EpisodeStore.open(tmp_path / "s") as store:
        local = loop_for(make_robot("tabletop", image_size=32, max_steps=20), store)
        remote_robot = ZmqRobot(endpoint, BridgeConfig(timeout_s=5.0))
        remote = loop_for(remote_robot, store)
        assert remote_robot.robot_spec.cameras == {"top": (32, 32)}
        a = store.read_episode(local.run_episode(seed=11).meta.episode_id)
        b = store.read_episode(remote.run_episode(seed=11).meta.episode_id)
        for name in ("action", "policy_action", "state", "reward", "intervention", "frame_index"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        np.testing.assert_array_equal(a.images["top"], b.images["top"])
        assert a.meta.instruction == b.meta.instruction and a.meta.outcome == b.meta.outcome
        local.close(), remote.close()
        remote_robot.close()


def test_killed_server_ends_the_episode_aborted_with_steps_kept_then_the_robot_reconnects(tmp_path):
    proc, endpoint = start_server()
    port = int(endpoint.rsplit(":", 1)[1])
    robot = ZmqRobot(endpoint, BridgeConfig(timeout_s=0.5))

    class KillAt(SpyRobot):
        def step(self, action):
            if len(self.sent) == 6:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            return super().step(action)

    with EpisodeStore.open(tmp_path / "s") as store:
        loop = loop_for(KillAt(robot), store)
        r = loop.run_episode(seed=0)
        assert (r.meta.outcome, r.meta.marked_by, r.end_reason) == ("aborted", "none", "robot_disconnected")
        ep = store.read_episode(r.meta.episode_id)
        assert len(ep.action) == 7 and np.isfinite(ep.reward[:6]).all()  # the 7th step's result is unknown
        with pytest.raises(RobotDisconnected, match="did not answer 'reset'"):
            loop.run_episode(seed=1)  # still down: no episode begun
        assert store.in_flight() == []
        proc2, _ = start_server(port)
        try:
            r2 = loop_for(robot, store).run_episode(seed=1)  # the same ZmqRobot reconnects by itself
            assert r2.meta.outcome in ("timeout", "failure", "success") and r2.steps > 0
            assert robot.health().resets == 1
        finally:
            proc2.kill()
            proc2.wait(10)
        loop.close()
    robot.close()


def test_malformed_request_is_refused_with_an_error_and_counted_and_the_server_keeps_serving(server):
    _, endpoint = server
    raw = new_socket(zmq.DEALER)
    raw.connect(endpoint)
    raw.send_multipart([b"\x91\x01"])  # msgpack [1], not a header map
    err = decode(recv_frames(raw, 5.0), sender="test")
    assert err.kind == "error" and "header must be a map" in err.fields["message"]
    robot = ZmqRobot(endpoint, BridgeConfig(timeout_s=5.0))
    robot.reset(seed=0)
    bad = np.zeros(5, np.float32)
    raw2 = ZmqRobot(endpoint, BridgeConfig(timeout_s=5.0))
    with pytest.raises(RobotError, match=r"refused 'step'.*shape \(5,\), expected \(3\)"):
        raw2._call("step", arrays={"action": bad})  # bypasses the client's own check
    h = robot.health()
    assert h.ok and h.refused == 2 and h.driver == "tabletop"
    raw.close(), robot.close(), raw2.close()


def test_no_server_means_a_clear_disconnect_error():
    from rlpost.transport import free_port

    with pytest.raises(RobotDisconnected, match="did not answer 'spec'"):
        ZmqRobot(f"tcp://127.0.0.1:{free_port()}", BridgeConfig(connect_timeout_s=0.3))
