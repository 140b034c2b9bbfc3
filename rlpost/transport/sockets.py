"""zmq socket helpers: loopback binding by default, free ports for tests, receiving with timeouts.

``security`` is ``"none"`` or ``"curve"`` (see :mod:`rlpost.transport.curve`). Without
CURVE a listener may bind only to loopback unless the caller explicitly allows an
unauthenticated remote listener (a robot reachable from the network without auth is
what hurt users of earlier robot-learning stacks).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Literal, get_args

import zmq

LOOPBACK = "127.0.0.1"
Security = Literal["none", "curve"]
SECURITY_MODES: tuple[str, ...] = get_args(Security)


def check_security(security: str, host: str, allow_remote_without_auth: bool, what: str) -> None:
    """Refuse a security mode that does not exist and a remote listener without authentication.

    Any host is fine with ``security="curve"``; the key files are checked when the socket is made.

    Raises:
        ValueError: naming ``what``, the host and the setting to change.
    """
    if security not in SECURITY_MODES:
        raise ValueError(
            f"{what}: security={security!r} is not available; choose one of {list(SECURITY_MODES)}"
        )
    if security == "none" and not is_loopback(host) and not allow_remote_without_auth:
        raise ValueError(
            f"{what}: refusing to listen on {host!r} without authentication; bind to {LOOPBACK}, "
            f"use security=curve with keys from `rlpost keys`, or set allow_remote_without_auth=true "
            f"on a trusted network"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (localhost or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(sock: zmq.Socket, host: str = LOOPBACK, port: int = 0) -> str:
    """Bind ``sock`` over TCP; port 0 picks a free one.

    Returns:
        The endpoint bound, e.g. ``"tcp://127.0.0.1:53121"``.
    """
    if port == 0:
        port = sock.bind_to_random_port(f"tcp://{host}")
    else:
        sock.bind(f"tcp://{host}:{port}")
    return f"tcp://{host}:{port}"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free right now (for tests that must know a port before binding)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def recv_frames(sock: zmq.Socket, timeout_s: float) -> list[zmq.Frame] | None:
    """Receive one multipart message, or None if nothing arrived within ``timeout_s``."""
    if sock.poll(max(0, int(timeout_s * 1000)), zmq.POLLIN) == 0:
        return None
    return sock.recv_multipart(copy=False)


def new_socket(kind: int, *, linger_ms: int = 0, hwm: int = 1000) -> zmq.Socket:
    """A socket on the process's shared context, with linger 0 so closing never blocks."""
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, linger_ms)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    return sock
