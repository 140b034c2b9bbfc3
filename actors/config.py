"""Config schemas of everything next to a robot (dataclasses; registered with Hydra by rlpost.config).

Choices are plain ``str`` fields checked in ``__post_init__`` (OmegaConf cannot type ``Literal``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlpost.schema import check_noise_scale
from rlpost.sim.config import SimConfig, SimOperatorConfig
from rlpost.transport.curve import CurveKeys
from rlpost.transport.sockets import LOOPBACK, check_security


def _require(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)


def _check_link(
    security: str, host: str, allow_remote: bool, curve: CurveKeys, prefix: str, what: str
) -> None:
    check_security(security, host, allow_remote, what)
    # Keys given but CURVE off would run the link unauthenticated while the user thinks it is not.
    _require(
        security == "curve" or not curve.any_set(),
        f"{what}: {prefix}.curve names key files but {prefix}.security={security!r}; set {prefix}.security=curve",
    )


@dataclass
class ControlConfig:
    """The fixed-rate control loop and how it executes action chunks."""

    hz: float = 0.0  # control rate; 0: the robot's declared control_hz (RobotSpec's default is 50)
    realtime: bool = True  # False: simulated time, as fast as the robot and policy allow (same logic)
    execute: int = 8  # k: actions executed from each chunk of H before switching to the next one
    lead_steps: int = 2  # the next chunk is requested this many steps before it is due
    blend_steps: int = 0  # blend the new chunk into the old one's tail over this many steps (0: switch)
    nonrealtime_wait_s: float = 10.0  # realtime off: simulated time waits this long for a due chunk
    first_chunk_timeout_s: float = 60.0  # the robot rests while the episode's first chunk is computed
    max_steps: int = 0  # episode timeout in steps; 0: only the robot's own truncation
    human_timeout_s: float = 0.5  # a person's last action older than this (wall time) -> hold

    def __post_init__(self) -> None:
        _require(self.hz >= 0, f"control.hz={self.hz} must be >= 0 (0: the robot's rate)")
        _require(self.execute >= 1, f"control.execute={self.execute} must be >= 1")
        _require(
            0 <= self.lead_steps <= self.execute,
            f"control.lead_steps={self.lead_steps} must be in [0, execute={self.execute}]",
        )
        _require(
            self.blend_steps >= 0 and self.max_steps >= 0, "control.blend_steps and max_steps must be >= 0"
        )
        for name in ("nonrealtime_wait_s", "first_chunk_timeout_s", "human_timeout_s"):
            _require(getattr(self, name) > 0, f"control.{name}={getattr(self, name)} must be > 0")


@dataclass
class WorkspaceConfig:
    """Box limits on positions the robot reports in its state (empty: no workspace limits).

    ``mode="position"``: action dims are absolute targets and are clipped into the box.
    ``mode="velocity"``: action dims move the position; a component pushing further out of
    the box while the state is at or beyond its edge is zeroed.
    """

    state_dims: tuple[int, ...] = ()  # indices into state [S] that are positions
    action_dims: tuple[int, ...] = ()  # the action [A] dims that command them, same order
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    mode: str = "velocity"  # "position" | "velocity"

    def __post_init__(self) -> None:
        n = len(self.state_dims)
        _require(
            len(self.action_dims) == len(self.low) == len(self.high) == n,
            f"safety.workspace: state_dims, action_dims, low and high must have one entry per "
            f"limited dimension; got {n}, {len(self.action_dims)}, {len(self.low)}, {len(self.high)}",
        )
        _require(
            all(lo < hi for lo, hi in zip(self.low, self.high, strict=True)), "safety.workspace: low < high"
        )
        _require(self.mode in ("position", "velocity"), f"safety.workspace.mode={self.mode!r}")


@dataclass
class SafetyConfig:
    """What the safety filter enforces on every action before it reaches the robot."""

    max_delta: tuple[float, ...] = ()  # per-step change limit, robot units; (): the robot's own or none
    # Holding position: velocity-commanded robots send zeros ("zero"), position-commanded ones
    # repeat their last command ("last"). With "zero", hold_keep_dims keep their last value
    # (a gripper must stay closed on what it holds).
    hold: str = "zero"  # "zero" | "last"
    hold_keep_dims: tuple[int, ...] = ()
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)

    def __post_init__(self) -> None:
        _require(self.hold in ("zero", "last"), f"safety.hold={self.hold!r} must be 'zero' or 'last'")
        _require(all(d > 0 for d in self.max_delta), f"safety.max_delta={self.max_delta} must be > 0")


@dataclass
class BridgeConfig:
    """The zmq bridge between a robot's driver (robot-server) and its actor (ZmqRobot)."""

    host: str = LOOPBACK  # robot-server listens here; ZmqRobot connects here
    port: int = 0  # 0: robot-server picks a free port and prints it
    security: str = "none"  # "none" (loopback only, unless allowed below) | "curve"
    allow_remote_without_auth: bool = False
    # security=curve: the robot-server uses server_secret_key + authorized_keys, ZmqRobot
    # uses client_secret_key + server_public_key (files from `rlpost keys`).
    curve: CurveKeys = field(default_factory=CurveKeys)
    timeout_s: float = 1.0  # a robot that does not answer a request within this is disconnected
    connect_timeout_s: float = 5.0  # first contact (spec request)
    max_message_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        _require(self.timeout_s > 0 and self.connect_timeout_s > 0, "bridge timeouts must be > 0")
        _require(0 <= self.port < 65536, f"bridge.port={self.port} is not a TCP port")
        _check_link(self.security, self.host, self.allow_remote_without_auth, self.curve, "bridge", "bridge")


@dataclass
class RobotServerConfig:
    """`rlpost robot-server`: serve one robot driver over zmq."""

    driver: str = "tabletop"  # a registered sim task, or "package.module:Class" of a gymnasium-style driver
    driver_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the driver class
    robot_id: str = "robot-0"
    bridge: BridgeConfig = field(default_factory=BridgeConfig)


@dataclass
class OperatorChannelConfig:
    """Where the actor listens for operator devices."""

    host: str = LOOPBACK
    port: int = 0  # 0: a free port (status reports the endpoint)
    security: str = "none"  # "none" (loopback only, unless allowed below) | "curve"
    allow_remote_without_auth: bool = False
    max_message_bytes: int = 64 * 1024  # commands are tiny; anything bigger is refused
    # security=curve: the channel uses server_secret_key + authorized_keys; an in-process
    # device (the simulated operator) uses client_secret_key + server_public_key.
    curve: CurveKeys = field(default_factory=CurveKeys)

    def __post_init__(self) -> None:
        _check_link(
            self.security,
            self.host,
            self.allow_remote_without_auth,
            self.curve,
            "operator",
            "operator channel",
        )


@dataclass
class ActorConfig:
    """One robot actor: its robot, policy copy, store, operator channel and loop."""

    robot_id: str = "sim-0"
    session_id: str = ""  # "" -> a fresh id
    robot: str = "sim"  # "sim": a simulated robot in-process; "zmq": a robot-server
    task: str = "tabletop"  # sim task (robot=sim) and the episode's task name
    sim: SimConfig = field(default_factory=SimConfig)
    endpoint: str = ""  # robot=zmq: the robot-server, e.g. tcp://127.0.0.1:5555
    policy: str = ""  # VLA checkpoint directory
    store: str = "runs/store"  # episode store directory
    weights_dir: str = ""  # head-<version>.safetensors files; "" -> weights offered through the actor
    seed: int = 0  # episode i of this actor uses env seed seed + i
    # exploration: the policy's initial noise is noise_scale * N(0, I) while this robot practises
    # (each episode records it in its meta extra "noise_scale"); evaluation and heads are unaffected
    noise_scale: float = 1.0
    reconnect_timeout_s: float = 30.0  # how long to wait for a disconnected robot before giving up
    sim_operator: bool = False  # a simulated operator supervises (sim robots), over the operator channel
    sim_operator_cfg: SimOperatorConfig = field(default_factory=SimOperatorConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    # The built-in sims take [vx, vy, grip]: hold = stop moving, keep the grip.
    safety: SafetyConfig = field(default_factory=lambda: SafetyConfig(hold="zero", hold_keep_dims=(2,)))
    operator: OperatorChannelConfig = field(default_factory=OperatorChannelConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)

    def __post_init__(self) -> None:
        _require(self.robot in ("sim", "zmq"), f"actor.robot={self.robot!r} must be 'sim' or 'zmq'")
        _require(self.robot != "zmq" or bool(self.endpoint), "actor.robot=zmq needs actor.endpoint")
        _require(
            not (self.sim_operator and self.robot != "sim"),
            "actor.sim_operator needs robot=sim: the simulated operator watches the sim's privileged state",
        )
        _require(bool(self.policy), "actor.policy must name a VLA checkpoint directory")
        _require(self.reconnect_timeout_s > 0, "actor.reconnect_timeout_s must be > 0")
        check_noise_scale(self.noise_scale, "actor.noise_scale")
