"""Config schemas of the simulated robots, their scripted experts and the simulated operator.

Plain dataclasses: the CLI turns Hydra's config into these, library code never sees
Hydra. A contradiction fails in ``__post_init__`` with a sentence a user understands.
Fields left at ``None`` take the task's default (see :data:`TASK_DEFAULTS`).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

CAMERAS: tuple[str, ...] = ("top", "wrist")
BUILTIN_TASKS: tuple[str, ...] = ("tabletop", "multistage")
IMPERFECTION_KINDS: tuple[str, ...] = ("slow", "hesitant", "wrong_object_first", "missed_grasp")
ROUTES: tuple[str, ...] = ("oracle", "safe", "hazard", "random")
TRIGGERS: tuple[str, ...] = ("stall", "hazard", "wrong_object")

# Per-task defaults for the fields a SimConfig leaves at None. The tabletop task is the
# language-grounding task (no drops); the multistage task adds drops when carrying fast.
TASK_DEFAULTS: dict[str, dict[str, object]] = {
    "tabletop": {"max_steps": 80, "drop_prob": 0.0},
    "multistage": {"max_steps": 140, "drop_prob": 0.5},
}


def nearest_name(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """A hint naming the closest valid choice, for error messages ('' if none is close)."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _fail(cls: str, msg: str) -> None:
    raise ValueError(f"{cls}: {msg}")


@dataclass
class SimConfig:
    """How a built-in simulated robot looks and behaves.

    The world is a 2-D tabletop in [0, 1]^2 (x right, y down) drawn top-down with numpy.
    """

    task: str = "tabletop"
    image_size: int = 64  # h = w of every camera image, pixels
    # Subset of CAMERAS; "wrist" is a zoomed crop around the gripper. Where a policy drives the
    # sim (eval, practice, compare) the sim renders the policy's cameras instead
    # (:func:`with_policy_cameras`); this setting is for collection, benchmarks and tests.
    cameras: tuple[str, ...] = ("top",)
    wrist_zoom: int = 2  # magnification of the wrist camera; image_size must be divisible by it
    max_steps: int | None = None  # step limit; the episode is truncated (timeout) when reached
    control_hz: float = 10.0  # declared in the RobotSpec; the sim itself is not real time
    n_blocks: int = 3  # coloured blocks; the instruction names one of them
    n_targets: int = 1  # coloured rings (tabletop only); with > 1 the instruction names one
    wall: bool = True  # a wall between blocks and rings with two gaps (a short and a long route)
    hazard_fail_prob: float = 0.5  # chance per episode that the hazard in the top gap is armed
    drop_speed: float = 0.7  # carrying faster than this fraction of top speed may drop the block
    drop_prob: float | None = None  # drop chance per step at top speed (0 disables drops)
    step_cost: float = 0.01  # subtracted from the reward every step, so faster is better

    def __post_init__(self) -> None:
        name = "SimConfig"
        self.cameras = tuple(self.cameras)
        if self.task not in BUILTIN_TASKS:
            _fail(
                name,
                f"unknown task {self.task!r}; built-in tasks are {list(BUILTIN_TASKS)}"
                + nearest_name(self.task, BUILTIN_TASKS),
            )
        if not self.cameras:
            _fail(name, "cameras is empty; a policy needs at least one camera")
        for cam in self.cameras:
            if cam not in CAMERAS:
                _fail(
                    name, f"unknown camera {cam!r}; choose from {list(CAMERAS)}" + nearest_name(cam, CAMERAS)
                )
        if len(set(self.cameras)) != len(self.cameras):
            _fail(name, f"cameras {list(self.cameras)} lists a camera twice")
        if self.image_size < 32:
            _fail(name, f"image_size={self.image_size} is too small to see the blocks; use at least 32")
        if "wrist" in self.cameras and (self.wrist_zoom < 1 or self.image_size % self.wrist_zoom):
            _fail(
                name,
                f"the wrist camera needs image_size ({self.image_size}) divisible by wrist_zoom ({self.wrist_zoom})",
            )
        if self.max_steps is not None and self.max_steps < 10:
            _fail(name, f"max_steps={self.max_steps} is too short for any task; use at least 10")
        if not 1 <= self.n_blocks <= 6:
            _fail(name, f"n_blocks={self.n_blocks} must be between 1 and 6 (one colour each)")
        if not 1 <= self.n_targets <= 3:
            _fail(name, f"n_targets={self.n_targets} must be between 1 and 3 (one colour each)")
        if self.task == "multistage" and self.n_targets != 1:
            _fail(name, f"the multistage task has one ring; n_targets={self.n_targets} is only for tabletop")
        if not 0.0 <= self.hazard_fail_prob <= 1.0:
            _fail(name, f"hazard_fail_prob={self.hazard_fail_prob} must be a probability in [0, 1]")
        if self.hazard_fail_prob > 0 and not self.wall:
            _fail(
                name,
                "the hazard sits in a gap of the wall: with wall=False set hazard_fail_prob=0",
            )
        if not 0.0 < self.drop_speed < 1.0:
            _fail(name, f"drop_speed={self.drop_speed} must be a fraction of top speed in (0, 1)")
        if self.drop_prob is not None and not 0.0 <= self.drop_prob <= 1.0:
            _fail(name, f"drop_prob={self.drop_prob} must be a probability in [0, 1]")
        if not self.control_hz > 0:
            _fail(name, f"control_hz={self.control_hz} must be positive")
        if self.step_cost < 0:
            _fail(name, f"step_cost={self.step_cost} must be >= 0 (it is subtracted from the reward)")

    def resolved(self) -> SimConfig:
        """A copy with every ``None`` field replaced by the task's default."""
        defaults = TASK_DEFAULTS[self.task]
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in defaults.items():
            if values[key] is None:
                values[key] = value
        return SimConfig(**values)


def with_policy_cameras(sim: SimConfig, cameras: Sequence[str]) -> SimConfig:
    """``sim`` rendering exactly the cameras a policy reads: a simulated robot can show any
    camera, and a policy needs all of its own (an unknown camera name fails in SimConfig)."""
    return dataclasses.replace(sim, cameras=tuple(cameras))


@dataclass
class ExpertConfig:
    """A scripted expert that reads the sim's privileged state.

    Imperfect demos are still successful by design (they cost time, not the episode):
    ``slow`` moves at ``slow_factor`` of the speed, ``hesitant`` pauses now and then,
    ``wrong_object_first`` goes to a non-instructed block first and then recovers,
    ``missed_grasp`` closes the gripper short of the named block, then opens and grasps it
    (the recovery a policy needs after its own early close).
    """

    noise: float = 0.1  # std of Gaussian noise added to every action dimension
    imperfect_rate: float = 0.0  # chance that a demo is imperfect
    imperfect_kinds: tuple[str, ...] = IMPERFECTION_KINDS  # the kinds drawn (uniformly) when imperfect
    speed: float = 1.0  # fraction of top speed when moving empty-handed
    carry_margin: float = 0.15  # carry this much below the task's drop_speed when drops are on
    slow_factor: float = 0.5  # speed multiplier of slow demos
    pause_prob: float = 0.12  # hesitant demos: chance per step to start a pause
    pause_steps: tuple[int, int] = (2, 5)  # hesitant demos: pause length range, steps (inclusive)
    # Route round the wall. "oracle" takes the top (hazard) gap only when the hazard is not
    # armed, a privileged choice that splits demos between the routes and keeps them all
    # successful; "safe" always takes the bottom gap; "hazard" always the top one;
    # "random" picks 50/50 without looking. Without a hazard every route takes the shorter gap.
    # A str, not a Literal: OmegaConf structured configs reject Literal; __post_init__ checks it.
    route: str = "oracle"

    def __post_init__(self) -> None:
        name = "ExpertConfig"
        self.imperfect_kinds = tuple(self.imperfect_kinds)
        self.pause_steps = tuple(self.pause_steps)  # type: ignore[assignment]
        if self.noise < 0:
            _fail(name, f"noise={self.noise} is a standard deviation and must be >= 0")
        if not 0.0 <= self.imperfect_rate <= 1.0:
            _fail(name, f"imperfect_rate={self.imperfect_rate} must be a probability in [0, 1]")
        if self.imperfect_rate > 0 and not self.imperfect_kinds:
            _fail(name, "imperfect_rate > 0 but imperfect_kinds is empty; name at least one kind")
        for kind in self.imperfect_kinds:
            if kind not in IMPERFECTION_KINDS:
                _fail(
                    name,
                    f"unknown imperfection {kind!r}; choose from {list(IMPERFECTION_KINDS)}"
                    + nearest_name(kind, IMPERFECTION_KINDS),
                )
        if self.route not in ROUTES:
            _fail(
                name,
                f"unknown route {self.route!r}; choose from {list(ROUTES)}"
                + nearest_name(self.route, ROUTES),
            )
        if not 0.0 < self.speed <= 1.0:
            _fail(name, f"speed={self.speed} must be a fraction of top speed in (0, 1]")
        if not 0.0 < self.slow_factor < 1.0:
            _fail(name, f"slow_factor={self.slow_factor} must be in (0, 1) for slow demos to be slower")
        if not 0.0 <= self.pause_prob <= 1.0:
            _fail(name, f"pause_prob={self.pause_prob} must be a probability in [0, 1]")
        lo, hi = self.pause_steps
        if not 1 <= lo <= hi:
            _fail(name, f"pause_steps={self.pause_steps} must be (min, max) with 1 <= min <= max")
        if not 0.0 <= self.carry_margin < 1.0:
            _fail(name, f"carry_margin={self.carry_margin} must be in [0, 1)")


@dataclass
class SimOperatorConfig:
    """A simulated person who watches an episode, takes over with the expert and marks the outcome."""

    operator_id: str = "sim-operator"
    robot_id: str = "sim-0"
    triggers: tuple[str, ...] = TRIGGERS  # what makes the person step in
    stall_window: int = 6  # steps without progress that count as a stall
    stall_epsilon: float = 0.01  # progress gain below this is no progress
    hazard_lookahead_steps: int = 4  # steps of current velocity extrapolated to spot a hazard entry
    hazard_margin: float = 0.1  # closer than this to the hazard and moving toward it also alarms
    reaction_delay_steps: int = 2  # steps between noticing and taking over
    takeover_steps: int = 10  # steps the person keeps control before handing back
    max_takeovers: int | None = None  # per episode; None: no limit
    mark_timeout_as_failure: bool = True  # a timed-out episode is marked failure (else left unmarked)
    # The person's own actions: the expert with its route choice made without privileged
    # knowledge of the hazard (a person would not know whether it is armed).
    expert: ExpertConfig = field(default_factory=lambda: ExpertConfig(noise=0.05, route="safe"))

    def __post_init__(self) -> None:
        name = "SimOperatorConfig"
        self.triggers = tuple(self.triggers)
        for trig in self.triggers:
            if trig not in TRIGGERS:
                _fail(
                    name,
                    f"unknown trigger {trig!r}; choose from {list(TRIGGERS)}" + nearest_name(trig, TRIGGERS),
                )
        if self.stall_window < 1:
            _fail(name, f"stall_window={self.stall_window} must be at least 1 step")
        if self.reaction_delay_steps < 0:
            _fail(name, f"reaction_delay_steps={self.reaction_delay_steps} must be >= 0")
        if self.takeover_steps < 1:
            _fail(name, f"takeover_steps={self.takeover_steps} must be at least 1 step")
        if self.hazard_lookahead_steps < 1:
            _fail(name, f"hazard_lookahead_steps={self.hazard_lookahead_steps} must be at least 1")
        if self.hazard_margin < 0:
            _fail(name, f"hazard_margin={self.hazard_margin} must be >= 0")
        if self.max_takeovers is not None and self.max_takeovers < 0:
            _fail(name, f"max_takeovers={self.max_takeovers} must be >= 0 or None")
        if self.stall_epsilon < 0:
            _fail(name, f"stall_epsilon={self.stall_epsilon} must be >= 0")
        if self.expert.imperfect_rate > 0:
            _fail(
                name, "the operator's expert must not make deliberate mistakes; set expert.imperfect_rate=0"
            )
        if not self.operator_id:
            _fail(name, "operator_id is empty; commands must say who sent them")


@dataclass
class PeerConfig:
    """How to wrap a peer suite's gymnasium env (image observations) as an rlpost Robot.

    Key paths name entries of the peer's observation dict, "/" between nesting levels
    ("pixels", "agent_pos", "pixels/top"); "." names an observation that is itself the array.
    """

    name: str = "pusht"
    env_id: str = "gym_pusht/PushT-v0"
    module: str = "gym_pusht"  # imported first: it registers env_id with gymnasium
    package_hint: str = "gym-pusht==0.1.8"  # what to pip install when module is missing
    make_kwargs: dict[str, Any] = field(
        default_factory=lambda: {
            "obs_type": "pixels_agent_pos",
            "observation_width": 64,
            "observation_height": 64,
        }
    )
    image_keys: dict[str, str] = field(default_factory=lambda: {"top": "pixels"})  # camera -> key path
    state_keys: tuple[str, ...] = ("agent_pos",)  # concatenated in this order into the state
    normalize_state: bool = True  # map state to [-1, 1] using the peer's finite observation bounds
    instruction: str = "push the T-shaped block onto the green T"
    progress_key: str | None = "coverage"  # info key whose value becomes progress (clipped to [0, 1])
    progress_scale: float = 1.0 / 0.95  # gym-pusht succeeds at 95% coverage
    max_steps: int = 300
    control_hz: float = 10.0

    def __post_init__(self) -> None:
        name = "PeerConfig"
        self.state_keys = tuple(self.state_keys)
        if not self.image_keys:
            _fail(name, f"peer {self.name!r} has no image_keys; a policy needs at least one camera")
        if not self.instruction.strip():
            _fail(name, f"peer {self.name!r} has an empty instruction; peers give none, so set one")
        if self.max_steps < 1:
            _fail(name, f"max_steps={self.max_steps} must be at least 1")
        if not self.control_hz > 0:
            _fail(name, f"control_hz={self.control_hz} must be positive")
        if self.progress_scale <= 0:
            _fail(name, f"progress_scale={self.progress_scale} must be positive")
