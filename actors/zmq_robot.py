"""ZmqRobot: the gymnasium env on the actor's side of the robot bridge (see robot_server.py).

Every call is one request and one reply on a DEALER socket, each request numbered so a
late reply to an earlier request is recognised and dropped. A robot that does not answer
within ``timeout_s`` raises :class:`RobotDisconnected`; the socket is then rebuilt, so
the next call reconnects by itself when the robot is back (nothing stale is delivered:
the old socket is closed with linger 0). With ``bridge.security=curve`` every socket
speaks CURVE with ``bridge.curve.client_secret_key`` and checks the server against
``bridge.curve.server_public_key``.
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
import zmq
from gymnasium import spaces

from actors.config import BridgeConfig
from rlpost.interfaces import OBS_IMAGES, OBS_INSTRUCTION, OBS_STATE
from rlpost.schema import RobotSpec, check_array
from rlpost.transport import (
    ClientKeys,
    Health,
    Message,
    WireLimits,
    decode,
    decode_health,
    decode_obs_reply,
    decode_spec,
    encode,
    new_socket,
    recv_frames,
)

log = logging.getLogger(__name__)


# How a robot-server refuses a step before its first reset: it was restarted under a running
# episode, and a step queued for its predecessor must not move the robot.
RESET_NEEDED = "reset needed"


class RobotDisconnected(ConnectionError):
    """The robot did not answer in time; the episode ends as aborted, every step so far kept."""


class RobotError(RuntimeError):
    """The robot server answered with an error (its driver raised, or it refused our request)."""


class ZmqRobot(gym.Env):
    """A robot served by ``rlpost robot-server``; satisfies :class:`rlpost.interfaces.Robot`."""

    def __init__(self, endpoint: str, cfg: BridgeConfig | None = None, robot_id: str = "actor") -> None:
        """Connect and fetch the robot's spec.

        Args:
            endpoint: the server, e.g. ``tcp://127.0.0.1:5555``.
            cfg: timeouts and the message size limit.
            robot_id: our name in the server's logs.

        Raises:
            RobotDisconnected: no answer within ``cfg.connect_timeout_s`` (with CURVE, also
                what a server that refuses our key looks like: it never answers).
            KeyFileError: security=curve and a key file is missing or not a key (names it).
        """
        self.endpoint, self.cfg, self.robot_id = endpoint, cfg or BridgeConfig(), robot_id
        self.limits = WireLimits(max_message_bytes=self.cfg.max_message_bytes)
        self._keys = ClientKeys.load(self.cfg.curve, "bridge.curve") if self.cfg.security == "curve" else None
        self._req = 0
        self._sock: zmq.Socket | None = None
        self.reconnects = 0
        self.robot_spec: RobotSpec = decode_spec(self._call("spec", timeout_s=self.cfg.connect_timeout_s))
        spec = self.robot_spec
        self.action_space = spaces.Box(spec.action_low, spec.action_high, dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                OBS_IMAGES: spaces.Dict(
                    {c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c, (h, w) in spec.cameras.items()}
                ),
                OBS_STATE: spaces.Box(-np.inf, np.inf, (spec.state_dim,), np.float32),
                OBS_INSTRUCTION: spaces.Text(max_length=1000),
            }
        )

    # -- gymnasium API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Reset the robot (``options`` is not sent: the wire carries a seed only)."""
        if options:
            raise ValueError(f"ZmqRobot.reset: options {sorted(options)} cannot be sent to a robot server")
        super().reset(seed=seed)
        obs, _, _, _, info = decode_obs_reply(self._call("reset", {"seed": seed}))
        return obs, info

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        check_array(
            action,
            name="action",
            where=f"ZmqRobot {self.endpoint}",
            dtype=np.float32,
            shape=(self.robot_spec.action_dim,),
            finite=True,
        )
        return decode_obs_reply(self._call("step", arrays={"action": action}))

    def health(self, timeout_s: float | None = None) -> Health:
        """The server's health report (raises RobotDisconnected when it does not answer)."""
        return decode_health(self._call("health", timeout_s=timeout_s))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    # -- requests ---------------------------------------------------------------------------------------
    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            self._sock = new_socket(zmq.DEALER)
            if self._keys is not None:
                self._keys.apply(self._sock)
            self._sock.connect(self.endpoint)
        return self._sock

    def _call(
        self,
        kind: str,
        fields: dict[str, Any] | None = None,
        arrays: dict[str, np.ndarray] | None = None,
        timeout_s: float | None = None,
    ) -> Message:
        timeout = self.cfg.timeout_s if timeout_s is None else timeout_s
        self._req += 1
        req = self._req
        sock = self._socket()
        frames_out = encode(kind, self.robot_id, {"req": req, **(fields or {})}, arrays)
        hint = " (or it refused our CURVE key)" if self._keys is not None else ""
        try:
            sock.setsockopt(zmq.SNDTIMEO, max(1, int(timeout * 1000)))
            sock.send_multipart(frames_out, copy=False)
        except zmq.Again as e:  # no live connection: a refused handshake leaves the DEALER none
            self.close()
            self.reconnects += 1
            raise RobotDisconnected(
                f"robot at {self.endpoint}: could not send {kind!r} (request {req}) within {timeout} s{hint}"
            ) from e
        while True:
            frames = recv_frames(sock, timeout)
            if frames is None:
                # Rebuild the socket: requests queued for a dead server must not reach its successor.
                self.close()
                self.reconnects += 1
                raise RobotDisconnected(
                    f"robot at {self.endpoint} did not answer {kind!r} (request {req}) within {timeout} s{hint}"
                )
            msg = decode(frames, sender=self.endpoint, limits=self.limits)
            if msg.fields.get("req") != req:
                log.warning(
                    "dropping a late reply %r to request %r from %s",
                    msg.kind,
                    msg.fields.get("req"),
                    self.endpoint,
                )
                continue
            if msg.kind == "error":
                text = str(msg.fields.get("message"))
                if text.startswith(RESET_NEEDED):  # the server restarted: this episode is over
                    self.reconnects += 1  # already talking to its successor: a reconnection
                    raise RobotDisconnected(f"robot at {self.endpoint} restarted mid-episode: {text}")
                raise RobotError(f"robot at {self.endpoint} refused {kind!r}: {text}")
            return msg
