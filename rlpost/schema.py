"""The data that crosses a process or package boundary, one frozen dataclass each.

Shape letters (the same everywhere in rlpost):
    B batch, T time, H chunk horizon, A action dim, S state dim, C cameras.
Images are uint8 [h, w, 3] RGB; states and actions float32 in robot units
(metres, radians, or the normalised units a simulated robot declares).

Every message has a ``validate(where)`` that raises :class:`SchemaError`
naming the field, the sender and what was wrong. Nothing here depends on
torch, so robot-side code can import it cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

SCHEMA_VERSION = 2  # 2: steps carry the chunk they came from (chunk_start, sampled)

Outcome = Literal["success", "failure", "timeout", "aborted", "running"]
Source = Literal["demo", "autonomous", "teleop", "imported"]
MarkedBy = Literal["env", "operator", "sim_operator", "reward_model", "none"]
OperatorCommandKind = Literal[
    "take_over",  # a person takes control; human_action messages follow
    "human_action",  # one action from the person's device (float32 [A])
    "hand_back",  # control returns to the policy
    "mark_success",
    "mark_failure",
    "abort",  # end the episode now, outcome aborted
    "reset",  # start a new episode
    "pause",
    "resume",
    "estop",  # latch: hold position until clear_estop
    "clear_estop",
]

OUTCOMES: tuple[str, ...] = get_args(Outcome)
SOURCES: tuple[str, ...] = get_args(Source)
MARKED_BY: tuple[str, ...] = get_args(MarkedBy)
OPERATOR_COMMAND_KINDS: tuple[str, ...] = get_args(OperatorCommandKind)


class SchemaError(ValueError):
    """A message or array does not match the schema; the text names what and where."""


def check_array(
    value: object,
    *,
    name: str,
    where: str,
    dtype: np.dtype | type,
    shape: tuple[int | None, ...],
    finite: bool = False,
) -> np.ndarray:
    """Check dtype and shape (``None`` matches any size) and optionally finiteness.

    Returns the array unchanged. Raises SchemaError naming ``name`` and ``where``.
    """
    if not isinstance(value, np.ndarray):
        raise SchemaError(f"{where}: {name} must be a numpy array, got {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise SchemaError(f"{where}: {name} has dtype {value.dtype}, expected {np.dtype(dtype)}")
    if value.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(value.shape, shape, strict=False)
    ):
        want_s = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise SchemaError(f"{where}: {name} has shape {value.shape}, expected {want_s}")
    if finite and not np.all(np.isfinite(value)):
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        raise SchemaError(f"{where}: {name} contains {bad} NaN/Inf value(s)")
    return value


def _check_choice(value: str, *, name: str, where: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SchemaError(f"{where}: {name}={value!r} is not one of {list(choices)}")


@dataclass(frozen=True)
class RobotSpec:
    """What a robot declares about itself; every step it sends must match it."""

    cameras: dict[str, tuple[int, int]]  # camera -> (h, w) of its uint8 [h, w, 3] images
    state_dim: int  # S
    action_dim: int  # A
    action_low: np.ndarray  # float32 [A], robot units
    action_high: np.ndarray  # float32 [A], robot units
    control_hz: float = 50.0
    max_delta: np.ndarray | None = None  # float32 [A], largest change per step, or None

    def validate(self, where: str = "robot spec") -> RobotSpec:
        if not self.cameras:
            raise SchemaError(f"{where}: cameras is empty; a VLA needs at least one camera")
        for cam, hw in self.cameras.items():
            if len(hw) != 2 or min(hw) <= 0:
                raise SchemaError(f"{where}: camera {cam!r} has size {hw}, expected (h, w) > 0")
        if self.state_dim < 0 or self.action_dim <= 0:
            raise SchemaError(
                f"{where}: state_dim={self.state_dim}, action_dim={self.action_dim} must be >= 0 and > 0"
            )
        a = (self.action_dim,)
        check_array(self.action_low, name="action_low", where=where, dtype=np.float32, shape=a, finite=True)
        check_array(self.action_high, name="action_high", where=where, dtype=np.float32, shape=a, finite=True)
        if np.any(self.action_low >= self.action_high):
            raise SchemaError(f"{where}: action_low must be < action_high in every dimension")
        if self.max_delta is not None:
            check_array(self.max_delta, name="max_delta", where=where, dtype=np.float32, shape=a, finite=True)
        if not (self.control_hz > 0 and math.isfinite(self.control_hz)):
            raise SchemaError(f"{where}: control_hz={self.control_hz} must be a positive number")
        return self


@dataclass(frozen=True)
class Observation:
    """What the policy sees at one control step."""

    images: dict[str, np.ndarray]  # camera -> uint8 [h, w, 3]
    state: np.ndarray  # float32 [S], robot units
    instruction: str  # the task in words, e.g. "put the red block in the ring"

    def validate(self, where: str, spec: RobotSpec | None = None) -> Observation:
        if not isinstance(self.instruction, str):
            raise SchemaError(f"{where}: instruction must be str, got {type(self.instruction).__name__}")
        if spec is not None and set(self.images) != set(spec.cameras):
            raise SchemaError(
                f"{where}: images has cameras {sorted(self.images)}, robot declares {sorted(spec.cameras)}"
            )
        for cam, img in self.images.items():
            hw = spec.cameras[cam] if spec is not None else (None, None)
            check_array(img, name=f"images[{cam!r}]", where=where, dtype=np.uint8, shape=(*hw, 3))
        s = spec.state_dim if spec is not None else None
        check_array(self.state, name="state", where=where, dtype=np.float32, shape=(s,), finite=True)
        return self


@dataclass(frozen=True)
class SampledChunk:
    """A chunk as the policy sampled it; it rides on the first step that executes from it.

    With the recorded noise the head reproduces the chunk exactly (``VLA.sample(noise=...)``), so
    learners never have to invert the flow to find the noise behind the policy's own actions.
    """

    start: int  # frame index of the observation it was sampled from (its action 0 is that step's)
    noise: np.ndarray  # float32 [H, A], the flow's initial noise, in the policy's normalised action units
    actions: np.ndarray  # float32 [H, A], robot units, as sampled (before the safety filter)

    def validate(self, where: str, action_dim: int | None = None) -> SampledChunk:
        a = (None, action_dim)
        check_array(self.actions, name="sampled chunk", where=where, dtype=np.float32, shape=a, finite=True)
        check_array(self.noise, name="sampled noise", where=where, dtype=np.float32, shape=a, finite=True)
        if self.noise.shape != self.actions.shape:
            raise SchemaError(
                f"{where}: sampled noise has shape {self.noise.shape}, its chunk {self.actions.shape}"
            )
        return self


@dataclass(frozen=True)
class StepRecord:
    """One control step as the robot actor saw it; a step recorded is a step stored."""

    images: dict[str, np.ndarray]  # camera -> uint8 [h, w, 3], observation at t
    state: np.ndarray  # float32 [S], observation at t
    action: np.ndarray  # float32 [A], what was executed (after the safety filter)
    policy_action: np.ndarray  # float32 [A], what the policy proposed (NaN if none was ready)
    intervention: bool  # True while a person held control
    policy_version: int  # head weights that produced policy_action (-1: no policy, e.g. a demo)
    t_ns: int  # monotonic clock at observation time, ns
    frame_index: int  # 0-based position in the episode
    reward: float = float("nan")  # env reward if the robot reports one (sim); NaN otherwise
    # frame index of the observation the executed policy chunk was sampled from; -1 when no
    # policy chunk acted (a person held control, a demo, a scripted behaviour)
    chunk_start: int = -1
    sampled: SampledChunk | None = None  # on the first step executing a newly sampled chunk

    def validate(self, where: str, spec: RobotSpec | None = None) -> StepRecord:
        Observation(self.images, self.state, "").validate(where, spec)
        a = spec.action_dim if spec is not None else self.action.shape[-1] if self.action.ndim else None
        check_array(self.action, name="action", where=where, dtype=np.float32, shape=(a,), finite=True)
        # policy_action may be NaN: a step where no fresh chunk was ready records that honestly.
        check_array(self.policy_action, name="policy_action", where=where, dtype=np.float32, shape=(a,))
        if self.frame_index < 0:
            raise SchemaError(f"{where}: frame_index={self.frame_index} must be >= 0")
        if not -1 <= self.chunk_start <= self.frame_index:
            raise SchemaError(
                f"{where}: chunk_start={self.chunk_start} must be -1 or a frame at or before frame_index={self.frame_index}"
            )
        if self.sampled is not None:
            self.sampled.validate(where, a)
            if self.sampled.start != self.chunk_start:
                raise SchemaError(
                    f"{where}: the sampled chunk starts at frame {self.sampled.start}, the step says chunk_start={self.chunk_start}"
                )
        return self


MAX_NOISE_SCALE = 5.0  # exploration: the largest scale of the initial noise any setting accepts


def check_noise_scale(value: float, name: str) -> float:
    """``value`` if it is a usable scale of the flow's initial noise, in (0, MAX_NOISE_SCALE].

    Raises:
        ValueError: naming the setting ``name`` and its value.
    """
    if not 0.0 < value <= MAX_NOISE_SCALE:
        raise ValueError(f"{name}={value} must be in (0, {MAX_NOISE_SCALE:g}]")
    return value


def noise_scale_tag(value: float) -> dict[str, str]:
    """The episode-meta tag that records the noise scale an episode was practised with."""
    return {"noise_scale": f"{value:g}"}


@dataclass(frozen=True)
class EpisodeMeta:
    """Everything about an episode that is not per step."""

    episode_id: str  # unique, assigned when the episode starts
    task: str  # registered task name, e.g. "tabletop"
    instruction: str
    robot_id: str
    session_id: str
    source: Source
    outcome: Outcome = "running"
    marked_by: MarkedBy = "none"
    length: int = 0
    seed: int | None = None  # env seed, for paired evaluation
    start_ns: int = 0  # wall clock (time.time_ns) at episode start
    duration_s: float = 0.0  # robot time the episode took
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, str] = field(default_factory=dict)  # free text tags only; never data the learner needs
    episode_index: int = -1  # position in the episode store, assigned when the episode is finished; -1 before

    def validate(self, where: str = "episode meta") -> EpisodeMeta:
        if not self.episode_id:
            raise SchemaError(f"{where}: episode_id is empty")
        _check_choice(self.source, name="source", where=where, choices=SOURCES)
        _check_choice(self.outcome, name="outcome", where=where, choices=OUTCOMES)
        _check_choice(self.marked_by, name="marked_by", where=where, choices=MARKED_BY)
        if self.length < 0:
            raise SchemaError(f"{where}: length={self.length} must be >= 0")
        if self.episode_index < -1:
            raise SchemaError(f"{where}: episode_index={self.episode_index} must be >= -1 (-1: not finished)")
        if self.schema_version > SCHEMA_VERSION:
            raise SchemaError(
                f"{where}: schema_version {self.schema_version} is newer than this rlpost ({SCHEMA_VERSION}); upgrade rlpost"
            )
        return self


@dataclass(frozen=True)
class OperatorCommand:
    """One command from an operator's device (teleop, console, simulated operator)."""

    kind: OperatorCommandKind
    robot_id: str  # which robot it is for ("*" for all)
    operator_id: str  # who sent it, for the log and the episode's marked_by
    seq: int = 0  # per-operator sequence number, to spot drops and reorders
    t_ns: int = 0  # sender's monotonic clock, ns
    action: np.ndarray | None = None  # float32 [A], only for kind == "human_action"

    def validate(self, where: str, action_dim: int | None = None) -> OperatorCommand:
        _check_choice(self.kind, name="kind", where=where, choices=OPERATOR_COMMAND_KINDS)
        if self.kind == "human_action":
            if self.action is None:
                raise SchemaError(
                    f"{where}: operator {self.operator_id!r} sent human_action without an action"
                )
            check_array(
                self.action,
                name=f"action from operator {self.operator_id!r}",
                where=where,
                dtype=np.float32,
                shape=(action_dim,),
                finite=True,
            )
        elif self.action is not None:
            raise SchemaError(
                f"{where}: operator {self.operator_id!r} sent an action with kind={self.kind!r}"
            )
        return self
