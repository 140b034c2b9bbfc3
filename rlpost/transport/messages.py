"""Typed messages on the wire: operator commands and acks, robot bridge requests and replies.

Kinds and what they carry (fields in the msgpack header, arrays as frames):

==================  =====================================================  ==========================
kind                fields                                                 arrays
==================  =====================================================  ==========================
operator_command    kind, robot_id, operator_id, seq, t_ns                 action (float32 [A], opt.)
ack                 seq, ok, error                                         -
spec                req                                                    -
spec_reply          req, cameras {cam: [h, w]}, state_dim, action_dim,     action_low, action_high,
                    control_hz                                             max_delta (opt.)
reset               req, seed (int or nil)                                 -
step                req                                                    action (float32 [A])
obs_reply           req, instruction, reward, terminated, truncated, info  images/<cam>, state,
                                                                           info/<key> (opt.)
health              req                                                    -
health_reply        req, ok, driver, uptime_s, steps, resets, refused,     -
                    auth_refused (opt., 0 if absent)
error               req, message                                           -
==================  =====================================================  ==========================

``info`` may hold bool, int, float, str and None values (header) and numpy arrays
(frames ``info/<key>``); anything else is refused on encoding, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlpost.interfaces import OBS_IMAGES, OBS_INSTRUCTION, OBS_STATE
from rlpost.schema import OperatorCommand, RobotSpec, SchemaError
from rlpost.transport.wire import Message, WireError, encode

OPERATOR_KINDS = ("operator_command",)
ROBOT_REQUEST_KINDS = ("spec", "reset", "step", "health")
_INFO_SCALARS = (bool, int, float, str, type(None))


# -- operator channel ------------------------------------------------------------------------------
def encode_command(cmd: OperatorCommand) -> list:
    """An :class:`OperatorCommand` as frames."""
    fields = {
        "kind": cmd.kind,
        "robot_id": cmd.robot_id,
        "operator_id": cmd.operator_id,
        "seq": int(cmd.seq),
        "t_ns": int(cmd.t_ns),
    }
    arrays = {"action": cmd.action} if cmd.action is not None else {}
    return encode("operator_command", cmd.operator_id, fields, arrays)


def decode_command(msg: Message, action_dim: int | None = None) -> OperatorCommand:
    """Build and validate an :class:`OperatorCommand` from a decoded message.

    Raises:
        WireError: a missing or mistyped field, a wrong action dtype/shape, an unknown kind.
    """
    where = f"operator command from {msg.sender!r}"
    action = msg.arrays.get("action")
    cmd = OperatorCommand(
        kind=msg.field_of("kind", str, where),
        robot_id=msg.field_of("robot_id", str, where),
        operator_id=msg.field_of("operator_id", str, where),
        seq=msg.field_of("seq", int, where),
        t_ns=msg.field_of("t_ns", int, where),
        action=None if action is None else action.copy(),
    )
    try:
        return cmd.validate(where, action_dim)
    except WireError:
        raise
    except SchemaError as e:
        raise WireError(str(e)) from e


@dataclass(frozen=True)
class Ack:
    """The operator channel's answer to one command."""

    seq: int
    ok: bool
    error: str = ""  # why the command was refused, when not ok


def encode_ack(ack: Ack, sender: str) -> list:
    return encode("ack", sender, {"seq": ack.seq, "ok": ack.ok, "error": ack.error})


def decode_ack(msg: Message) -> Ack:
    where = "operator channel ack"
    return Ack(
        msg.field_of("seq", int, where), msg.field_of("ok", bool, where), msg.field_of("error", str, where)
    )


# -- robot bridge ------------------------------------------------------------------------------------
def encode_spec(spec: RobotSpec, req: int, sender: str) -> list:
    """A robot's :class:`RobotSpec` as a ``spec_reply``."""
    arrays = {"action_low": spec.action_low, "action_high": spec.action_high}
    if spec.max_delta is not None:
        arrays["max_delta"] = spec.max_delta
    fields = {
        "req": req,
        "cameras": {cam: list(hw) for cam, hw in spec.cameras.items()},
        "state_dim": spec.state_dim,
        "action_dim": spec.action_dim,
        "control_hz": float(spec.control_hz),
    }
    return encode("spec_reply", sender, fields, arrays)


def decode_spec(msg: Message) -> RobotSpec:
    """Raises WireError when the spec is malformed (names the field)."""
    where = f"robot spec from {msg.sender!r}"
    cams = msg.field_of("cameras", dict, where)
    try:
        cameras = {str(c): (int(hw[0]), int(hw[1])) for c, hw in cams.items()}
        spec = RobotSpec(
            cameras=cameras,
            state_dim=msg.field_of("state_dim", int, where),
            action_dim=msg.field_of("action_dim", int, where),
            action_low=msg.array("action_low", where).copy(),
            action_high=msg.array("action_high", where).copy(),
            control_hz=float(msg.field_of("control_hz", (int, float), where)),
            max_delta=msg.arrays["max_delta"].copy() if "max_delta" in msg.arrays else None,
        )
        return spec.validate(where)
    except (TypeError, IndexError) as e:
        raise WireError(f"{where}: field 'cameras' must map camera -> [h, w] ({e})") from e
    except WireError:
        raise
    except SchemaError as e:
        raise WireError(str(e)) from e


def encode_obs_reply(
    obs: dict,
    reward: float,
    terminated: bool,
    truncated: bool,
    info: dict,
    req: int,
    sender: str,
) -> list:
    """An observation (after reset or step) as an ``obs_reply``.

    Raises:
        WireError: an info value that is neither a scalar, a string nor a numpy array.
    """
    arrays = {f"images/{cam}": img for cam, img in obs[OBS_IMAGES].items()}
    arrays["state"] = obs[OBS_STATE]
    info_fields = {}
    for key, value in info.items():
        if isinstance(value, np.ndarray):
            arrays[f"info/{key}"] = value
        elif isinstance(value, np.generic):
            info_fields[key] = value.item()
        elif isinstance(value, _INFO_SCALARS):
            info_fields[key] = value
        else:
            raise WireError(
                f"robot {sender!r}: info[{key!r}] is a {type(value).__name__}; the wire carries "
                f"bool/int/float/str/None and numpy arrays in info"
            )
    fields = {
        "req": req,
        OBS_INSTRUCTION: str(obs[OBS_INSTRUCTION]),
        "reward": float(reward),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
        "info": info_fields,
    }
    return encode("obs_reply", sender, fields, arrays)


def decode_obs_reply(msg: Message) -> tuple[dict, float, bool, bool, dict]:
    """``(obs, reward, terminated, truncated, info)`` as a gymnasium env returns them."""
    where = f"observation from robot {msg.sender!r}"
    images = {k.removeprefix("images/"): v for k, v in msg.arrays.items() if k.startswith("images/")}
    info = dict(msg.field_of("info", dict, where))
    info.update({k.removeprefix("info/"): v for k, v in msg.arrays.items() if k.startswith("info/")})
    obs = {
        OBS_IMAGES: images,
        OBS_STATE: msg.array("state", where),
        OBS_INSTRUCTION: msg.field_of(OBS_INSTRUCTION, str, where),
    }
    return (
        obs,
        float(msg.field_of("reward", (int, float), where)),
        msg.field_of("terminated", bool, where),
        msg.field_of("truncated", bool, where),
        info,
    )


@dataclass(frozen=True)
class Health:
    """A robot server's health report."""

    ok: bool
    driver: str
    uptime_s: float
    steps: int
    resets: int
    refused: int  # malformed or oversized requests refused so far
    auth_refused: int = 0  # CURVE handshakes refused (no keys or an unlisted client key)

    def fields(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "driver": self.driver,
            "uptime_s": self.uptime_s,
            "steps": self.steps,
            "resets": self.resets,
            "refused": self.refused,
            "auth_refused": self.auth_refused,
        }


def decode_health(msg: Message) -> Health:
    where = f"health from robot {msg.sender!r}"
    return Health(
        ok=msg.field_of("ok", bool, where),
        driver=msg.field_of("driver", str, where),
        uptime_s=float(msg.field_of("uptime_s", (int, float), where)),
        steps=msg.field_of("steps", int, where),
        resets=msg.field_of("resets", int, where),
        refused=msg.field_of("refused", int, where),
        # servers older than CURVE support do not send it
        auth_refused=msg.field_of("auth_refused", int, where) if "auth_refused" in msg.fields else 0,
    )
