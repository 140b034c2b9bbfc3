"""CURVE on real loopback sockets: listed keys get through; no keys, unknown keys and a wrong server key get
no answer at all, and the listener logs and counts the refusal."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from actors.config import BridgeConfig, OperatorChannelConfig
from actors.operator_channel import OperatorChannel, OperatorClient
from actors.robot_server import RobotServer
from actors.zmq_robot import RobotDisconnected, ZmqRobot
from rlpost.sim import make_robot
from rlpost.transport import CurveKeys, KeyFileError
from rlpost.transport.curve import write_key_pair

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """A server pair, an authorised client pair and a stranger's pair; authorized/ holds the client's .key."""
    out = {}
    for name in ("server", "client", "stranger"):
        out[f"{name}.key"], out[f"{name}.key_secret"] = write_key_pair(tmp_path / "keys", name)
    (tmp_path / "authorized").mkdir()
    shutil.copy(out["client.key"], tmp_path / "authorized")
    out["authorized"] = tmp_path / "authorized"
    return out


def server_keys(k: dict[str, Path]) -> CurveKeys:
    return CurveKeys(server_secret_key=str(k["server.key_secret"]), authorized_keys=str(k["authorized"]))


def client_keys(k: dict[str, Path], who: str = "client", server: str = "server") -> CurveKeys:
    return CurveKeys(client_secret_key=str(k[f"{who}.key_secret"]), server_public_key=str(k[f"{server}.key"]))


@pytest.fixture
def robot_server(keys):
    # Curve forced on for loopback: the "beyond loopback needs auth" rule is a config check, tested below.
    cfg = BridgeConfig(host="127.0.0.1", security="curve", curve=server_keys(keys))
    server = RobotServer(make_robot("tabletop", image_size=32, max_steps=20), "arm-1", cfg, "tabletop")
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join(5.0)
    server.close()


def test_an_authorised_actor_drives_the_robot_and_strangers_get_no_answer_and_are_counted(
    robot_server, keys, caplog
):
    caplog.set_level(logging.WARNING)
    good = ZmqRobot(robot_server.endpoint, BridgeConfig(security="curve", curve=client_keys(keys)))
    obs, _ = good.reset(seed=3)
    obs, *_ = good.step(np.zeros(good.robot_spec.action_dim, np.float32))
    assert obs["images"]["top"].shape == (32, 32, 3)
    assert good.health().auth_refused == 0

    strangers = {
        "no keys": BridgeConfig(connect_timeout_s=0.5),
        "unknown key": BridgeConfig(
            connect_timeout_s=0.5, security="curve", curve=client_keys(keys, "stranger")
        ),
        "wrong server key": BridgeConfig(
            connect_timeout_s=0.5, security="curve", curve=client_keys(keys, server="stranger")
        ),
    }
    for who, cfg in strangers.items():
        with pytest.raises(RobotDisconnected, match="did not answer 'spec'"):
            ZmqRobot(robot_server.endpoint, cfg, robot_id=who)

    h = good.health()  # the authorised actor is still served
    assert h.auth_refused >= len(strangers) and h.steps == 1 and h.refused == 0
    text = caplog.text
    assert "refused a connection: handshake failed (no CURVE keys, or a wrong server key)" in text
    assert "refused a connection: client key not in authorized_keys" in text
    stranger_key = keys["stranger.key"].read_text().split('public-key = "')[1].split('"')[0]
    assert f"refused a client with key {stranger_key}" in text
    good.close()


def test_an_authorised_device_gets_acks_and_unknown_devices_get_none_and_send_nothing(keys, caplog):
    caplog.set_level(logging.WARNING)
    channel = OperatorChannel(
        "arm-1", action_dim=3, cfg=OperatorChannelConfig(security="curve", curve=server_keys(keys))
    )
    try:
        ann = OperatorClient(channel.endpoint, "arm-1", "ann", curve=client_keys(keys))
        assert ann.send_kind("take_over").ok
        assert ann.send_kind("human_action", np.array([0.1, 0.2, 0.3], np.float32)).ok

        eve = OperatorClient(channel.endpoint, "arm-1", "eve", ack_timeout_s=0.5)
        mallory = OperatorClient(
            channel.endpoint, "arm-1", "mallory", ack_timeout_s=0.5, curve=client_keys(keys, "stranger")
        )
        for intruder in (eve, mallory):
            with pytest.raises(TimeoutError, match=r"(no ack for|could not send) command 1"):
                intruder.send_kind("estop")

        c = channel.counters
        assert c.received == 2 and c.refused == 0 and c.connections_refused >= 2
        assert [cmd.kind for cmd in channel.poll()] == ["take_over", "human_action"]  # no e-stop got in
        assert "operator channel of robot 'arm-1'" in caplog.text and "refused a connection" in caplog.text
        for client in (ann, eve, mallory):
            client.close()
    finally:
        channel.close()


def test_missing_or_wrong_key_files_are_named(keys, tmp_path):
    with pytest.raises(KeyFileError, match=r"security='curve' needs bridge\.curve\.server_secret_key"):
        RobotServer(make_robot("tabletop", image_size=32), "arm-1", BridgeConfig(security="curve"))
    missing = tmp_path / "nope.key_secret"
    with pytest.raises(KeyFileError, match=rf"{missing} \(bridge\.curve\.server_secret_key\)"):
        RobotServer(
            make_robot("tabletop", image_size=32),
            "arm-1",
            BridgeConfig(security="curve", curve=CurveKeys(str(missing), str(keys["authorized"]))),
        )
    public_only = CurveKeys(
        server_secret_key=str(keys["server.key"]), authorized_keys=str(keys["authorized"])
    )
    with pytest.raises(KeyFileError, match=r"server\.key: has no secret key"):
        OperatorChannel("arm-1", 3, OperatorChannelConfig(security="curve", curve=public_only))
    (tmp_path / "empty").mkdir()
    empty = CurveKeys(
        server_secret_key=str(keys["server.key_secret"]), authorized_keys=str(tmp_path / "empty")
    )
    with pytest.raises(
        KeyFileError, match=r"empty \(operator\.curve\.authorized_keys\): holds no client public"
    ):
        OperatorChannel("arm-1", 3, OperatorChannelConfig(security="curve", curve=empty))
    garbage = tmp_path / "garbage.key_secret"
    garbage.write_bytes(b"\xff\xfe not a key")
    with pytest.raises(KeyFileError, match=rf"{garbage} \(operator\.curve\.client_secret_key\)"):
        OperatorClient("tcp://127.0.0.1:1", "arm-1", "ann", curve=CurveKeys(client_secret_key=str(garbage)))


def test_beyond_loopback_needs_curve_and_keys_without_curve_are_refused(keys):
    with pytest.raises(ValueError, match=r"without authentication.*security=curve"):
        BridgeConfig(host="0.0.0.0")
    assert BridgeConfig(host="0.0.0.0", security="curve").security == "curve"
    assert OperatorChannelConfig(host="10.0.0.5", security="curve").host == "10.0.0.5"
    with pytest.raises(ValueError, match="security='tls' is not available"):
        OperatorChannelConfig(security="tls")
    with pytest.raises(ValueError, match=r"operator\.curve names key files but operator\.security='none'"):
        OperatorChannelConfig(curve=server_keys(keys))
