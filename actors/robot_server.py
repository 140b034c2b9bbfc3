"""`rlpost robot-server`: serve one robot driver over zmq, beside the driver, for a :class:`ZmqRobot`.

The driver is any gymnasium-style class with a ``robot_spec`` (:class:`rlpost.interfaces.Robot`)
whose observations follow rlpost's convention (``images``, ``state``, ``instruction``):
a registered sim task (``driver=tabletop``) or an import string
(``driver=my_lab.arm:ArmEnv`` with ``driver_kwargs``). Requests and replies are listed in
:mod:`rlpost.transport.messages`; a malformed request gets an ``error`` reply naming what
was wrong and is counted, and a driver that raises gets an ``error`` reply with its
exception (logged with the traceback); the server keeps serving either way. With
``bridge.security=curve`` only actors whose public keys are in ``bridge.curve.authorized_keys``
get answers; refused handshakes are logged and counted (``health().auth_refused``).

Standalone: ``python -m actors.robot_server --driver tabletop --port 5555``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import zmq

from actors.config import BridgeConfig, RobotServerConfig
from actors.zmq_robot import RESET_NEEDED
from rlpost.interfaces import Robot, observation_from_dict
from rlpost.schema import SchemaError, check_array
from rlpost.transport import (
    CurveKeys,
    CurveServer,
    Health,
    Message,
    WireError,
    WireLimits,
    bind,
    decode,
    encode,
    encode_obs_reply,
    encode_spec,
    new_socket,
    recv_frames,
)
from rlpost.transport.messages import ROBOT_REQUEST_KINDS

log = logging.getLogger(__name__)


def make_driver(name: str, kwargs: dict[str, Any] | None = None) -> Robot:
    """Build the driver a config names: a registered sim task, or ``"package.module:Class"``.

    Raises:
        ValueError: an unknown short name or a malformed import string.
        ImportError: the module cannot be imported.
        TypeError: the class does not produce a Robot (no ``robot_spec``, ``reset`` or ``step``).
    """
    kwargs = dict(kwargs or {})
    if ":" not in name:
        from rlpost.sim import make_robot  # registered short names are the sims; errors name the nearest

        return make_robot(name, **kwargs)
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ValueError(f"driver {name!r}: an import string must look like 'package.module:Class'")
    cls = getattr(importlib.import_module(module_name), attr, None)
    if cls is None:
        raise ValueError(f"driver {name!r}: module {module_name!r} has no attribute {attr!r}")
    env = cls(**kwargs)
    if not isinstance(env, Robot):
        raise TypeError(
            f"driver {name!r} built a {type(env).__name__}, which lacks robot_spec/reset/step/close"
        )
    return env


class RobotServer:
    """Serves one driver on a ROUTER socket; one request at a time, in order."""

    def __init__(self, env: Robot, robot_id: str, cfg: BridgeConfig | None = None, driver: str = "") -> None:
        self.env, self.robot_id, self.cfg = env, robot_id, cfg or BridgeConfig()
        self.driver = driver or type(env).__name__
        self.spec = env.robot_spec.validate(f"driver {self.driver!r}")
        self.limits = WireLimits(max_message_bytes=self.cfg.max_message_bytes)
        self._curve: CurveServer | None = None
        if self.cfg.security == "curve":
            self._curve = CurveServer(self.cfg.curve, "bridge.curve", f"robot-server {robot_id!r}")
            self._sock = self._curve.socket(zmq.ROUTER)
        else:
            self._sock = new_socket(zmq.ROUTER)
        self.endpoint = bind(self._sock, self.cfg.host, self.cfg.port)
        self.steps = self.resets = self.refused = self.errors = 0
        self._t0 = time.monotonic()

    def serve(self, stop: threading.Event | None = None) -> None:
        """Answer requests until ``stop`` is set (or forever)."""
        log.info(
            "robot-server %r (%s) listening on %s (security=%s)",
            self.robot_id,
            self.driver,
            self.endpoint,
            self.cfg.security,
        )
        while stop is None or not stop.is_set():
            frames = recv_frames(self._sock, 0.1)
            if frames is not None:
                self.handle(frames)

    def handle(self, frames: list) -> None:
        """Answer one request (identity frame first)."""
        identity, body = frames[0], frames[1:]
        peer = f"actor {bytes(identity.bytes).hex()[:8]} at {self.endpoint}"
        req: Any = -1
        try:
            msg = decode(body, sender=peer, limits=self.limits, kinds=ROBOT_REQUEST_KINDS)
            req = msg.field_of("req", int, f"robot-server {self.robot_id!r}")
            reply = self._answer(msg, req)
        except (WireError, SchemaError) as e:
            self.refused += 1
            log.warning("robot-server %r refused a request: %s", self.robot_id, e)
            reply = self._error(req, str(e))
        except Exception as e:  # the driver raised: answer with its error, keep serving
            self.errors += 1
            log.exception("robot-server %r: driver %s failed", self.robot_id, self.driver)
            reply = self._error(req, f"driver {self.driver} raised {type(e).__name__}: {e}")
        self._sock.send_multipart([identity, *reply], copy=False)

    def _error(self, req: Any, message: str) -> list:
        return encode(
            "error", self.robot_id, {"req": req if isinstance(req, int) else -1, "message": message}
        )

    def _answer(self, msg: Message, req: int) -> list:
        where = f"robot-server {self.robot_id!r} request {req}"
        if msg.kind == "spec":
            return encode_spec(self.spec, req, self.robot_id)
        if msg.kind == "health":
            return encode("health_reply", self.robot_id, {"req": req, **self.health().fields()})
        if msg.kind == "reset":
            seed = msg.fields.get("seed")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise WireError(f"{where}: field 'seed' must be an int or nil, got {seed!r}")
            obs, info = self.env.reset(seed=seed)
            self.resets += 1
            return self._obs_reply(obs, 0.0, False, False, info, req, where)
        action = check_array(
            msg.array("action", where),
            name="action",
            where=where,
            dtype=np.float32,
            shape=(self.spec.action_dim,),
            finite=True,
        )
        if not self.resets:  # a step queued for a server that died before us, mid-episode
            self.refused += 1
            log.warning("robot-server %r refused a step before its first reset", self.robot_id)
            return self._error(
                req, f"{RESET_NEEDED}: robot-server {self.robot_id!r} has not been reset since it started"
            )
        obs, reward, terminated, truncated, info = self.env.step(action.copy())
        self.steps += 1
        return self._obs_reply(obs, reward, terminated, truncated, info, req, where)

    def _obs_reply(
        self, obs: dict, reward: float, term: bool, trunc: bool, info: dict, req: int, where: str
    ) -> list:
        observation_from_dict(obs, f"{where}: driver {self.driver} observation", self.spec)
        return encode_obs_reply(obs, reward, term, trunc, info, req, self.robot_id)

    def health(self) -> Health:
        auth_refused = self._curve.refused if self._curve is not None else 0
        return Health(
            True,
            self.driver,
            time.monotonic() - self._t0,
            self.steps,
            self.resets,
            self.refused,
            auth_refused,
        )

    def close(self) -> None:
        self._sock.close(linger=0)
        if self._curve is not None:
            self._curve.close()
        self.env.close()


def run_robot_server(
    cfg: RobotServerConfig, stop: threading.Event | None = None, ready: Callable[[str], None] | None = None
) -> None:
    """Build the driver ``cfg`` names and serve it until ``stop`` is set or the process is interrupted.

    Args:
        cfg: driver, its kwargs, robot id and where to listen.
        stop: set it to stop serving (from another thread).
        ready: called with the bound endpoint once the server listens.
    """
    env = make_driver(cfg.driver, cfg.driver_kwargs)
    server = RobotServer(env, cfg.robot_id, cfg.bridge, cfg.driver)
    try:
        if ready is not None:
            ready(server.endpoint)
        server.serve(stop)
    except KeyboardInterrupt:
        log.info("robot-server %r interrupted", cfg.robot_id)
    finally:
        server.close()


def _parse_kwargs(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"robot-server: --set expects key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a bare word is a string
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


def main(argv: list[str] | None = None) -> int:
    """``rlpost robot-server`` / ``python -m actors.robot_server``; prints the endpoint once listening."""
    p = argparse.ArgumentParser(prog="rlpost robot-server", description=__doc__.splitlines()[0])
    p.add_argument("--driver", default="tabletop", help="sim task name or package.module:Class")
    p.add_argument(
        "--set", dest="kwargs", action="append", default=[], help="driver kwarg key=value (JSON value)"
    )
    p.add_argument("--robot-id", default="robot-0")
    p.add_argument("--host", default=BridgeConfig.host)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--allow-remote-without-auth", action="store_true")
    p.add_argument("--security", choices=["none", "curve"], default="none")
    p.add_argument("--server-secret-key", default="", help="curve: this server's <name>.key_secret")
    p.add_argument("--authorized-keys", default="", help="curve: directory of admitted actors' <name>.key")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = RobotServerConfig(
        driver=args.driver,
        driver_kwargs=_parse_kwargs(args.kwargs),
        robot_id=args.robot_id,
        bridge=BridgeConfig(
            host=args.host,
            port=args.port,
            allow_remote_without_auth=args.allow_remote_without_auth,
            security=args.security,
            curve=CurveKeys(server_secret_key=args.server_secret_key, authorized_keys=args.authorized_keys),
        ),
    )

    def announce(endpoint: str) -> None:
        print(f"robot-server {cfg.robot_id} listening on {endpoint}", flush=True)  # the CLI's output

    run_robot_server(cfg, ready=announce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
