"""Bad zmq frames, generated: random bytes, truncations, oversize, wrong field types, wrong dtypes and
shapes. The decoders raise WireError/SchemaError naming the field, never anything else; live listeners
on loopback answer each with an error, count it, and keep serving."""

from __future__ import annotations

import threading

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.config import BridgeConfig
from actors.operator_channel import OperatorChannel, OperatorClient
from actors.robot_server import RobotServer
from actors.zmq_robot import ZmqRobot
from rlpost.interfaces import observation_from_dict
from rlpost.schema import OperatorCommand, RobotSpec, SchemaError
from rlpost.sim import make_robot
from rlpost.transport import (
    WireError,
    WireLimits,
    decode,
    decode_ack,
    decode_command,
    decode_obs_reply,
    encode,
    encode_command,
    encode_obs_reply,
    new_socket,
    recv_frames,
)
from rlpost.transport.messages import OPERATOR_KINDS
from tests.support.badinput import tally

pytestmark = [pytest.mark.badinput, pytest.mark.timeout(120)]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SPEC = RobotSpec(
    cameras={"top": (8, 8)},
    state_dim=4,
    action_dim=3,
    action_low=np.full(3, -1.0, np.float32),
    action_high=np.full(3, 1.0, np.float32),
)
COMMAND_FIELDS = {"kind": str, "robot_id": str, "operator_id": str, "seq": int, "t_ns": int}
ALLOWED = ["|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"]


def _bytes(frames) -> list[bytes]:
    return [bytes(f) for f in frames]


def good_command() -> list[bytes]:
    cmd = OperatorCommand("human_action", "arm-1", "ann", 1, 5, np.array([0.1, 0.2, 0.3], np.float32))
    return _bytes(encode_command(cmd))


def good_obs() -> list[bytes]:
    obs = {
        "images": {"top": np.zeros((8, 8, 3), np.uint8)},
        "state": np.ones(4, np.float32),
        "instruction": "go",
    }
    return _bytes(encode_obs_reply(obs, 0.5, False, False, {"progress": 0.1}, req=1, sender="arm-1"))


def decode_as_actor(frames: list[bytes]) -> None:
    """What an actor does with an obs_reply: decode, then check it against the robot's spec."""
    obs, *_ = decode_obs_reply(decode(frames, sender="fuzz"))
    observation_from_dict(obs, "observation from robot 'arm-1'", SPEC)


def decode_as_channel(frames: list[bytes]) -> None:
    decode_command(decode(frames, sender="fuzz", kinds=OPERATOR_KINDS), action_dim=3)


# -- strategies ---------------------------------------------------------------------------------------
wrong_value = {
    str: st.one_of(st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True), st.none(), st.booleans(), st.lists(st.integers(-9, 9), max_size=2)),
    int: st.one_of(st.text(max_size=5), st.floats(allow_nan=True), st.none(), st.booleans(), st.binary(max_size=4)),
}  # fmt: skip


@st.composite
def truncated(draw, makers: tuple = ()) -> list[bytes]:
    frames = draw(st.sampled_from(makers or (good_command, good_obs)))()
    how = draw(st.sampled_from(["header", "array", "drop_frame", "extra_frame"]))
    if how == "header":
        frames[0] = frames[0][: draw(st.integers(0, len(frames[0]) - 1))]
    elif how == "array":
        i = draw(st.integers(1, len(frames) - 1))
        frames[i] = frames[i][: draw(st.integers(0, len(frames[i]) - 1))]
    elif how == "drop_frame":
        del frames[draw(st.integers(1, len(frames) - 1))]
    else:
        frames.append(draw(st.binary(max_size=16)))
    return frames


@st.composite
def wrong_array(draw) -> tuple[str, list[bytes], str]:
    """(which message, frames, the name the error must carry) with one array of a wrong dtype or shape."""
    dtype = draw(st.sampled_from(ALLOWED))
    shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=3))
    target = draw(st.sampled_from(["command action", "obs state", "obs image"]))
    want_dtype, want_shape = (
        ("|u1", [8, 8, 3]) if target == "obs image" else ("<f4", [3] if "command" in target else [4])
    )
    if dtype == want_dtype and shape == want_shape:
        shape = [*shape, 2]
    arr = np.zeros(shape, np.dtype(dtype))
    if target == "command action":
        fields = {"kind": "human_action", "robot_id": "arm-1", "operator_id": "ann", "seq": 1, "t_ns": 0}
        return target, _bytes(encode("operator_command", "ann", fields, {"action": arr})), "action"
    frames = good_obs()
    header = msgpack.unpackb(frames[0])
    i = 1 + [s[0] for s in header["arrays"]].index("state" if target == "obs state" else "images/top")
    header["arrays"][i - 1] = [header["arrays"][i - 1][0], arr.dtype.str, list(arr.shape)]
    frames[0], frames[i] = msgpack.packb(header), arr.tobytes()
    return target, frames, "state" if target == "obs state" else "images['top']"


@st.composite
def wrong_field(draw) -> tuple[list[bytes], str]:
    """An operator command with one header field missing or of a wrong type; the name the error must carry."""
    header = msgpack.unpackb(good_command()[0])
    name = draw(st.sampled_from(sorted(COMMAND_FIELDS)))
    if draw(st.booleans()):
        del header["fields"][name]
    else:
        header["fields"][name] = draw(wrong_value[COMMAND_FIELDS[name]])
    return [msgpack.packb(header), good_command()[1]], name


@st.composite
def any_bad_message(draw) -> list[bytes]:
    kind = draw(st.sampled_from(["random", "truncated", "field", "array"]))
    if kind == "random":
        return draw(st.lists(st.binary(max_size=64), min_size=1, max_size=3))
    if kind == "truncated":
        return draw(truncated((good_command,)))
    if kind == "field":
        return draw(wrong_field())[0]
    dtype = draw(st.sampled_from([d for d in ALLOWED if d != "<f4"]))
    fields = {"kind": "human_action", "robot_id": "arm-1", "operator_id": "eve", "seq": 9, "t_ns": 0}
    return _bytes(encode("operator_command", "eve", fields, {"action": np.zeros(3, np.dtype(dtype))}))


# -- the decoders -----------------------------------------------------------------------------------------
@FAST
@given(st.lists(st.binary(max_size=300), min_size=0, max_size=4), st.sampled_from(["channel", "actor"]))
def test_random_bytes_are_refused_with_a_wire_error_only(frames, as_who):
    with pytest.raises(WireError, match="wire message"):
        (decode_as_channel if as_who == "channel" else decode_as_actor)(frames)
    tally("zmq frames: random bytes", "refused")


@FAST
@given(truncated())
def test_any_truncation_of_a_valid_command_or_observation_is_refused(frames):
    with pytest.raises(WireError, match=r"(frame|array|msgpack|declares)"):
        decode(frames, sender="fuzz")
    tally("zmq frames: truncated valid messages", "refused")


@FAST
@given(st.integers(1, 4096), st.sampled_from(["message", "array", "header", "claimed"]))
def test_oversized_frames_are_refused_naming_the_limit(limit, which):
    lim = WireLimits(max_message_bytes=limit if which == "message" else 1 << 20,
                     max_array_bytes=limit if which in ("array", "claimed") else 1 << 20,
                     max_header_bytes=limit if which == "header" else 1 << 16)  # fmt: skip
    if which == "claimed":  # a tiny frame whose header claims a huge array: refused before allocating
        header = {
            "wire": 1,
            "kind": "step",
            "sender": "eve",
            "fields": {},
            "arrays": [["a", "<f8", [limit, 8]]],
        }
        frames = [msgpack.packb(header), b"\0" * 8]
    elif which == "header":
        frames = _bytes(encode("step", "eve", {"pad": "x" * limit}))
    else:
        frames = _bytes(encode("step", "eve", {}, {"action": np.zeros(limit + 1, np.uint8)}))
    with pytest.raises(WireError, match=f"limit of {limit}"):
        decode(frames, sender="fuzz", limits=lim)
    tally("zmq frames: oversized", "refused")


@FAST
@given(wrong_array())
def test_arrays_of_a_wrong_dtype_or_shape_are_refused_naming_the_field(case):
    target, frames, name = case
    with pytest.raises(SchemaError) as err:
        decode_as_channel(frames) if target == "command action" else decode_as_actor(frames)
    assert name in str(err.value) and ("dtype" in str(err.value) or "shape" in str(err.value)), str(err.value)
    tally("zmq frames: wrong dtype/shape arrays", "refused")


@FAST
@given(wrong_field())
def test_header_fields_missing_or_of_a_wrong_type_are_refused_naming_the_field(case):
    frames, name = case
    with pytest.raises(WireError, match=f"'{name}'"):
        decode_as_channel(frames)
    tally("zmq frames: missing/mistyped header fields", "refused")


# -- live listeners on loopback ------------------------------------------------------------------------
def test_a_live_operator_channel_answers_every_bad_message_with_an_error_and_keeps_serving():
    channel = OperatorChannel("arm-1", action_dim=3)
    raw = new_socket(zmq.DEALER)
    raw.connect(channel.endpoint)
    sent = 0

    @settings(max_examples=60, deadline=None)
    @given(any_bad_message())
    def one(frames):
        nonlocal sent
        raw.send_multipart(frames)
        sent += 1
        ack = decode_ack(decode(recv_frames(raw, 5.0), sender="test", kinds=("ack",)))
        assert not ack.ok and ack.error
        assert channel.counters.refused == sent
        tally("zmq frames: live operator channel", "refused")

    try:
        one()
        ann = OperatorClient(channel.endpoint, "arm-1", "ann")
        assert ann.send_kind("estop").ok  # still serving
        assert [c.kind for c in channel.poll()] == ["estop"] and channel.counters.received == 1
        ann.close()
    finally:
        raw.close()
        channel.close()


@st.composite
def bad_step_request(draw) -> list[bytes]:
    kind = draw(st.sampled_from(["random", "nonfinite", "dtype", "shape", "seed"]))
    if kind == "random":
        return draw(st.lists(st.binary(max_size=64), min_size=1, max_size=3))
    if kind == "seed":
        return _bytes(
            encode("reset", "eve", {"req": 1, "seed": draw(wrong_value[int].filter(lambda v: v is not None))})
        )
    action = np.zeros(3, np.float32)
    if kind == "nonfinite":
        action[draw(st.integers(0, 2))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "dtype":
        action = action.astype(draw(st.sampled_from([d for d in ALLOWED if d != "<f4"])))
    else:
        action = np.zeros(draw(st.sampled_from([0, 1, 2, 4, 7])), np.float32)
    return _bytes(encode("step", "eve", {"req": 1}, {"action": action}))


def test_a_live_robot_server_answers_every_bad_request_with_an_error_and_keeps_serving():
    server = RobotServer(
        make_robot("tabletop", image_size=32, max_steps=50), "arm-1", BridgeConfig(), "tabletop"
    )
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    raw = new_socket(zmq.DEALER)
    raw.connect(server.endpoint)
    robot = ZmqRobot(server.endpoint, BridgeConfig(timeout_s=5.0))
    robot.reset(seed=0)

    @settings(max_examples=60, deadline=None)
    @given(bad_step_request())
    def one(frames):
        before = robot.health().refused
        raw.send_multipart(frames)
        reply = decode(recv_frames(raw, 5.0), sender="test")
        assert reply.kind == "error" and reply.fields["message"]
        assert robot.health().refused == before + 1
        tally("zmq frames: live robot-server", "refused")

    try:
        one()
        robot.step(np.zeros(3, np.float32))  # the driver was never handed a bad action
        h = robot.health()
        assert h.ok and h.steps == 1 and h.resets == 1
    finally:
        robot.close()
        raw.close()
        stop.set()
        thread.join(5.0)
        server.close()
