"""The wire format refuses malformed, truncated, oversized and wrongly typed messages with a clear error."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlpost.schema import OperatorCommand
from rlpost.transport import (
    WireError,
    WireLimits,
    decode,
    decode_command,
    decode_obs_reply,
    encode,
    encode_command,
    encode_obs_reply,
)


def _bytes(frames) -> list[bytes]:
    return [bytes(f) for f in frames]


def test_command_round_trips_with_its_action():
    cmd = OperatorCommand("human_action", "arm-1", "ann", 7, 123, np.array([0.1, -0.2, 1.0], np.float32))
    back = decode_command(decode(_bytes(encode_command(cmd)), sender="test"), action_dim=3)
    assert (back.kind, back.robot_id, back.operator_id, back.seq, back.t_ns) == (
        "human_action",
        "arm-1",
        "ann",
        7,
        123,
    )
    np.testing.assert_array_equal(back.action, cmd.action)


def test_observation_round_trips_zero_copy_and_read_only():
    obs = {
        "images": {"top": np.arange(48, dtype=np.uint8).reshape(4, 4, 3)},
        "state": np.ones(6, np.float32),
        "instruction": "put the red block in the ring",
    }
    info = {
        "is_success": False,
        "progress": 0.25,
        "object_positions": np.zeros((3, 2), np.float32),
        "reason": "",
    }
    frames = encode_obs_reply(obs, -0.01, False, True, info, req=3, sender="arm")
    o, r, term, trunc, inf = decode_obs_reply(decode(frames, sender="test"))
    np.testing.assert_array_equal(o["images"]["top"], obs["images"]["top"])
    assert (r, term, trunc, o["instruction"]) == (-0.01, False, True, obs["instruction"])
    assert inf["progress"] == 0.25 and inf["object_positions"].shape == (3, 2)
    assert not o["state"].flags.writeable


def test_info_values_the_wire_cannot_carry_are_refused_naming_the_key():
    obs = {"images": {}, "state": np.ones(1, np.float32), "instruction": ""}
    with pytest.raises(WireError, match=r"info\['blob'\]"):
        encode_obs_reply(obs, 0.0, False, False, {"blob": object()}, req=1, sender="arm")


@pytest.mark.parametrize("dtype", [object, "U4", "V8", [("a", "f4")]])
def test_object_string_and_structured_dtypes_are_refused_on_encode(dtype):
    arr = np.zeros(2, dtype=dtype)
    with pytest.raises(WireError, match="dtype"):
        encode("x", "me", arrays={"a": arr})


def test_a_header_declaring_a_refused_dtype_is_refused_naming_the_array_and_sender():
    header = msgpack.packb(
        {"wire": 1, "kind": "x", "sender": "pad-2", "fields": {}, "arrays": [["a", "|O", [1]]]}
    )
    with pytest.raises(WireError, match=r"'pad-2'.*array 'a' has dtype '\|O'"):
        decode([header, b"\0" * 8], sender="tcp://peer")


def test_oversized_messages_and_arrays_are_refused_naming_the_limit():
    frames = _bytes(encode("x", "me", arrays={"img": np.zeros((64, 64, 3), np.uint8)}))
    with pytest.raises(WireError, match="limit of 1000 bytes per message"):
        decode(frames, sender="peer", limits=WireLimits(max_message_bytes=1000))
    with pytest.raises(WireError, match="over the limit of 100"):
        decode(frames, sender="peer", limits=WireLimits(max_array_bytes=100))


def test_truncated_frame_and_missing_frame_are_refused():
    frames = _bytes(encode("x", "me", arrays={"a": np.zeros(10, np.float32)}))
    with pytest.raises(WireError, match="needs 40 bytes, its frame has 39"):
        decode([frames[0], frames[1][:-1]], sender="peer")
    with pytest.raises(WireError, match="declares 1 array"):
        decode(frames[:1], sender="peer")


def test_wrong_version_kind_and_field_types_are_refused():
    frames = _bytes(
        encode(
            "operator_command",
            "ann",
            {"kind": "estop", "robot_id": "r", "operator_id": "ann", "seq": "1", "t_ns": 0},
        )
    )
    with pytest.raises(WireError, match=r"field 'seq'.*must be int, got str"):
        decode_command(decode(frames, sender="peer"))
    with pytest.raises(WireError, match="must be one of"):
        decode(frames, sender="peer", kinds=("ack",))
    bad = msgpack.packb({"wire": 99, "kind": "x", "sender": "s"})
    with pytest.raises(WireError, match="wire version 1"):
        decode([bad], sender="peer")


def test_human_action_of_the_wrong_shape_or_dtype_is_refused():
    cmd = OperatorCommand("human_action", "r", "ann", 1, 0, np.zeros(6, np.float32))
    with pytest.raises(WireError, match=r"shape \(6,\), expected \(3\)"):
        decode_command(decode(_bytes(encode_command(cmd)), sender="peer"), action_dim=3)
    frames = encode(
        "operator_command",
        "ann",
        {"kind": "human_action", "robot_id": "r", "operator_id": "ann", "seq": 1, "t_ns": 0},
        {"action": np.zeros(3, np.float64)},
    )
    with pytest.raises(WireError, match="dtype float64, expected float32"):
        decode_command(decode(_bytes(frames), sender="peer"), action_dim=3)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=0, max_size=4))
def test_random_bytes_never_crash_the_decoder_only_wire_errors(frames):
    try:
        decode(frames, sender="fuzz", limits=WireLimits(max_message_bytes=10_000))
    except WireError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(0, 2))
def test_any_truncation_of_a_valid_message_is_refused(cut, which):
    frames = _bytes(
        encode_command(
            OperatorCommand("human_action", "r", "ann", 1, 0, np.array([0.1, 0.2, 0.3], np.float32))
        )
    )
    if which == 0:
        frames[0] = frames[0][: min(cut, len(frames[0]) - 1)]
    elif which == 1:
        frames[1] = frames[1][: min(cut, len(frames[1]) - 1)]
    else:
        frames = frames[:1]
    with pytest.raises(WireError):
        decode_command(decode(frames, sender="fuzz"), action_dim=3)
