"""The zmq wire format (msgpack header + raw array frames; never pickle) and socket helpers."""

from rlpost.transport.curve import ClientKeys, CurveKeys, CurveServer, KeyFileError
from rlpost.transport.messages import (
    Ack,
    Health,
    decode_ack,
    decode_command,
    decode_health,
    decode_obs_reply,
    decode_spec,
    encode_ack,
    encode_command,
    encode_obs_reply,
    encode_spec,
)
from rlpost.transport.sockets import (
    LOOPBACK,
    Security,
    bind,
    check_security,
    free_port,
    new_socket,
    recv_frames,
)
from rlpost.transport.wire import ALLOWED_DTYPES, WIRE_VERSION, Message, WireError, WireLimits, decode, encode

__all__ = [
    "ALLOWED_DTYPES",
    "LOOPBACK",
    "WIRE_VERSION",
    "Ack",
    "ClientKeys",
    "CurveKeys",
    "CurveServer",
    "Health",
    "KeyFileError",
    "Message",
    "Security",
    "WireError",
    "WireLimits",
    "bind",
    "check_security",
    "decode",
    "decode_ack",
    "decode_command",
    "decode_health",
    "decode_obs_reply",
    "decode_spec",
    "encode",
    "encode_ack",
    "encode_command",
    "encode_obs_reply",
    "encode_spec",
    "free_port",
    "new_socket",
    "recv_frames",
]
