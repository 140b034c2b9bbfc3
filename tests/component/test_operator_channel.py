"""The operator channel on real zmq loopback sockets: commands arrive in order, bad ones are refused and counted."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import zmq

from actors.config import OperatorChannelConfig
from actors.operator_channel import OperatorChannel, OperatorClient, OperatorRefused
from rlpost.transport import decode, decode_ack, encode, new_socket, recv_frames

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def channel():
    ch = OperatorChannel("arm-1", action_dim=3)
    yield ch
    ch.close()


def test_commands_arrive_in_order_and_each_is_acked(channel):
    client = OperatorClient(channel.endpoint, "arm-1", "ann")
    assert channel.endpoint.startswith("tcp://127.0.0.1:")
    client.send_kind("take_over")
    for i in range(5):
        ack = client.send_kind("human_action", np.full(3, i / 10, np.float32))
        assert ack.ok
    client.send_kind("hand_back")
    got = channel.poll()
    assert [c.kind for c in got] == ["take_over", *["human_action"] * 5, "hand_back"]
    assert [c.seq for c in got] == list(range(1, 8))
    np.testing.assert_allclose(got[3].action, [0.2] * 3)
    assert channel.poll() == [] and channel.counters.received == 7
    client.close()


def test_wrong_robot_and_wrong_action_dim_are_refused_with_the_reason(channel):
    other = OperatorClient(channel.endpoint, "arm-2", "bob")
    with pytest.raises(OperatorRefused, match="addressed to robot 'arm-2'; this channel serves 'arm-1'"):
        other.send_kind("estop")
    ann = OperatorClient(channel.endpoint, "arm-1", "ann")
    with pytest.raises(OperatorRefused, match=r"shape \(7,\), expected \(3\)"):
        ann.send_kind("human_action", np.zeros(7, np.float32))
    assert ann.send_kind("estop").ok  # the channel still serves
    assert channel.counters.refused == 2 and [c.kind for c in channel.poll()] == ["estop"]
    other.close(), ann.close()


def test_malformed_and_oversized_messages_are_refused_counted_and_answered(channel):
    raw = new_socket(zmq.DEALER)
    raw.connect(channel.endpoint)
    raw.send_multipart([b"\xc1 not msgpack"])
    ack = decode_ack(decode(recv_frames(raw, 5.0), sender="test"))
    assert not ack.ok and "not valid msgpack" in ack.error
    raw.send_multipart(encode("operator_command", "eve", {}, {"action": np.zeros(100_000, np.float32)}))
    ack = decode_ack(decode(recv_frames(raw, 5.0), sender="test"))
    assert not ack.ok and "exceeds the limit" in ack.error
    raw.send_multipart(
        [msgpack.packb({"wire": 1, "kind": "operator_command", "sender": "eve", "fields": {}})]
    )
    ack = decode_ack(decode(recv_frames(raw, 5.0), sender="test"))
    assert not ack.ok and "has no field 'kind'" in ack.error
    assert channel.counters.refused == 3 and channel.poll() == []
    ok = OperatorClient(channel.endpoint, "arm-1", "ann").send_kind("pause")
    assert ok.ok
    raw.close()


def test_client_times_out_clearly_when_no_actor_listens():
    from rlpost.transport import free_port

    client = OperatorClient(f"tcp://127.0.0.1:{free_port()}", "arm-1", "ann", ack_timeout_s=0.2)
    with pytest.raises(TimeoutError, match="no ack for command 1"):
        client.send_kind("estop")
    client.close()


def test_listening_beyond_loopback_without_auth_is_refused():
    with pytest.raises(ValueError, match="without authentication"):
        OperatorChannelConfig(host="0.0.0.0")
    with pytest.raises(ValueError, match="security='tls' is not available"):
        OperatorChannelConfig(security="tls")
    assert OperatorChannelConfig(host="0.0.0.0", security="curve").security == "curve"  # see test_curve.py
