"""The operator channel: devices send :class:`OperatorCommand` messages to a robot's actor over zmq.

Server (inside the actor): a ROUTER socket on its own thread receives, checks and queues
commands, and answers each with an ``ack`` (ok, or the error that refused it). The control
loop takes the queued commands with :meth:`OperatorChannel.poll` (an
:class:`rlpost.interfaces.OperatorInput`). A malformed, oversized or misaddressed message
is refused with an error naming what was wrong, counted, and logged; it never stops the
actor.

Client (in a device): :class:`OperatorClient` sends commands on a DEALER socket and, by
default, waits for the ack, so the device knows the robot has the command.

Wire format: see :mod:`rlpost.transport.messages` (``operator_command`` / ``ack``).

With ``security="curve"`` the channel admits only devices whose public keys are in
``curve.authorized_keys``; any other device never gets an ack, and its refused
handshakes are counted in ``connections_refused`` and logged
(:mod:`rlpost.transport.curve`).
"""

from __future__ import annotations

import argparse
import collections
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
import zmq

from actors.config import OperatorChannelConfig
from rlpost.schema import OperatorCommand, OperatorCommandKind
from rlpost.transport import (
    Ack,
    ClientKeys,
    CurveKeys,
    CurveServer,
    WireError,
    WireLimits,
    bind,
    decode,
    decode_ack,
    decode_command,
    encode_ack,
    encode_command,
    new_socket,
    recv_frames,
)
from rlpost.transport.messages import OPERATOR_KINDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelCounters:
    """What the channel has seen."""

    received: int  # commands accepted and queued
    refused: int  # messages refused (malformed, oversized, wrong robot, wrong action dim)
    last_error: str  # the latest refusal's reason
    connections_refused: int = 0  # CURVE handshakes refused (no keys or an unlisted key)


class OperatorChannel:
    """Receives operator commands for one robot; see the module docstring."""

    def __init__(self, robot_id: str, action_dim: int, cfg: OperatorChannelConfig | None = None) -> None:
        """Bind the channel and start its receiving thread.

        Args:
            robot_id: commands must be addressed to this id or to "*".
            action_dim: A, the length of human actions this robot accepts.
            cfg: where to listen and the message size limit.
        """
        self.robot_id, self.action_dim = robot_id, action_dim
        self.cfg = cfg or OperatorChannelConfig()
        self.limits = WireLimits(
            max_header_bytes=self.cfg.max_message_bytes,
            max_array_bytes=self.cfg.max_message_bytes,
            max_message_bytes=self.cfg.max_message_bytes,
            max_arrays=1,
            max_ndim=1,
        )
        self._curve: CurveServer | None = None
        if self.cfg.security == "curve":
            self._curve = CurveServer(
                self.cfg.curve, "operator.curve", f"operator channel of robot {robot_id!r}"
            )
            self._sock = self._curve.socket(zmq.ROUTER)
        else:
            self._sock = new_socket(zmq.ROUTER)
        self.endpoint = bind(self._sock, self.cfg.host, self.cfg.port)
        self._queue: collections.deque[OperatorCommand] = collections.deque()
        self._lock = threading.Lock()
        self._received = self._refused = 0
        self._last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"operator-channel-{robot_id}", daemon=True)
        self._thread.start()
        log.info(
            "operator channel for robot %r listening on %s (security=%s)",
            robot_id,
            self.endpoint,
            self.cfg.security,
        )

    def poll(self) -> list[OperatorCommand]:
        """Commands received since the last poll, oldest first."""
        with self._lock:
            out = list(self._queue)
            self._queue.clear()
        return out

    @property
    def counters(self) -> ChannelCounters:
        auth_refused = self._curve.refused if self._curve is not None else 0
        with self._lock:
            return ChannelCounters(self._received, self._refused, self._last_error, auth_refused)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        if self._curve is not None:
            self._curve.close()

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                frames = recv_frames(self._sock, 0.05)
                if frames is not None:
                    self._handle(frames)
        finally:
            self._sock.close(linger=0)

    def _handle(self, frames: list) -> None:
        identity, body = frames[0], frames[1:]
        peer = f"operator device {bytes(identity.bytes).hex()[:8]} at {self.endpoint}"
        seq = -1
        try:
            msg = decode(body, sender=peer, limits=self.limits, kinds=OPERATOR_KINDS)
            raw_seq = msg.fields.get("seq")
            # Echo the seq only when it is a real int: a bool seq in the ack would break the device's decoder.
            seq = raw_seq if isinstance(raw_seq, int) and not isinstance(raw_seq, bool) else -1
            cmd = decode_command(msg, self.action_dim)
            if cmd.robot_id not in (self.robot_id, "*"):
                raise WireError(
                    f"{peer}: command {cmd.kind!r} from operator {cmd.operator_id!r} is addressed to robot "
                    f"{cmd.robot_id!r}; this channel serves {self.robot_id!r}"
                )
        except WireError as e:
            with self._lock:
                self._refused += 1
                self._last_error = str(e)
            log.warning("operator channel %s refused a message: %s", self.robot_id, e)
            self._reply(identity, Ack(seq, False, str(e)))
            return
        with self._lock:
            self._queue.append(cmd)
            self._received += 1
        self._reply(identity, Ack(cmd.seq, True))

    def _reply(self, identity: zmq.Frame, ack: Ack) -> None:
        # An ack that cannot be delivered (the device went away) is not our problem to retry.
        self._sock.send_multipart([identity, *encode_ack(ack, self.robot_id)], copy=False, flags=zmq.NOBLOCK)


class OperatorRefused(RuntimeError):
    """The robot's channel refused a command; the text is its reason."""


class OperatorClient:
    """What a device uses to send commands to one robot's operator channel."""

    def __init__(
        self,
        endpoint: str,
        robot_id: str,
        operator_id: str,
        ack_timeout_s: float = 1.0,
        curve: CurveKeys | None = None,
    ) -> None:
        """Args:
        endpoint: the channel, e.g. ``tcp://127.0.0.1:5600`` (the actor's status names it).
        robot_id: the robot the commands are for ("*": every robot on that channel).
        operator_id: who sends them (recorded as marked_by operator).
        ack_timeout_s: how long :meth:`send` waits for the channel's answer.
        curve: for a channel with security=curve: this device's key pair
            (``client_secret_key``) and the channel's public key (``server_public_key``).

        Raises:
            KeyFileError: a CURVE key file is missing or not a key (names it).
        """
        self.endpoint, self.robot_id, self.operator_id = endpoint, robot_id, operator_id
        self.ack_timeout_s = ack_timeout_s
        keys = ClientKeys.load(curve, "operator.curve") if curve is not None else None
        self._sock = new_socket(zmq.DEALER)
        # A DEALER with no live connection (a refused CURVE handshake drops it) blocks on send.
        self._sock.setsockopt(zmq.SNDTIMEO, max(1, int(ack_timeout_s * 1000)))
        if keys is not None:
            keys.apply(self._sock)
        self._sock.connect(endpoint)
        self._seq = 0
        self.sent: collections.Counter[str] = collections.Counter()

    def command(self, kind: OperatorCommandKind, action: np.ndarray | None = None) -> OperatorCommand:
        """A new command from this device, numbered and time-stamped."""
        self._seq += 1
        return OperatorCommand(kind, self.robot_id, self.operator_id, self._seq, time.monotonic_ns(), action)

    def send(self, cmd: OperatorCommand, wait_ack: bool = True) -> Ack | None:
        """Send one command; with ``wait_ack``, return the channel's ack.

        Raises:
            OperatorRefused: the channel refused it (its reason in the text).
            TimeoutError: not sent, or no ack, within ack_timeout_s (the actor is down or
                unreachable, or refused this device's CURVE key).
        """
        try:
            self._sock.send_multipart(encode_command(cmd), copy=False)
        except zmq.Again as e:
            raise TimeoutError(
                f"operator {self.operator_id!r}: could not send command {cmd.seq} to {self.endpoint} within "
                f"{self.ack_timeout_s} s: not connected (the actor is down, or refused this device's CURVE key)"
            ) from e
        self.sent[cmd.kind] += 1
        if not wait_ack:
            return None
        return self._await_ack(cmd.seq)

    def send_kind(
        self, kind: OperatorCommandKind, action: np.ndarray | None = None, wait_ack: bool = True
    ) -> Ack | None:
        """Shorthand: build and send one command."""
        return self.send(self.command(kind, action), wait_ack)

    def _await_ack(self, seq: int) -> Ack:
        deadline = time.monotonic() + self.ack_timeout_s
        while True:
            frames = recv_frames(self._sock, max(0.0, deadline - time.monotonic()))
            if frames is None:
                raise TimeoutError(
                    f"operator {self.operator_id!r}: no ack for command {seq} from {self.endpoint} "
                    f"within {self.ack_timeout_s} s (the actor is down, or refused this device's CURVE key)"
                )
            ack = decode_ack(decode(frames, sender=self.endpoint, kinds=("ack",)))
            if ack.seq in (seq, -1) and not ack.ok:
                raise OperatorRefused(ack.error)
            if ack.seq == seq:
                return ack
            # an ack of an earlier command sent without waiting: skip it

    def close(self) -> None:
        self._sock.close(linger=0)


def add_curve_args(p: argparse.ArgumentParser) -> None:
    """A device's command-line flags for a channel with security=curve."""
    p.add_argument(
        "--client-key", default="", help="curve: this device's <name>.key_secret (from `rlpost keys`)"
    )
    p.add_argument("--server-key", default="", help="curve: the operator channel's public <name>.key")


def curve_args(args: argparse.Namespace) -> CurveKeys | None:
    """The device's CURVE keys from :func:`add_curve_args` flags; None when neither is given."""
    if not (args.client_key or args.server_key):
        return None
    return CurveKeys(client_secret_key=args.client_key, server_public_key=args.server_key)
