"""What the console page shows and does, as typed data: the view, the alerts and the backend's shape.

The server (:mod:`rlpost.console.server`) only renders a :class:`ConsoleView` as JSON and
hands commands to a :class:`ConsoleBackend`; the practice session implements the
backend (``rlpost.session_console``), tests may implement it with real parts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

# What the page's buttons send: the operator commands a teleop device sends, minus the ones
# that need a device in the person's hands (take_over, human_action, hand_back).
ConsoleCommand = Literal[
    "pause", "resume", "mark_success", "mark_failure", "abort", "reset", "estop", "clear_estop"
]
CONSOLE_COMMANDS: tuple[str, ...] = (
    "pause",
    "resume",
    "mark_success",
    "mark_failure",
    "abort",
    "reset",
    "estop",
    "clear_estop",
)
ALL_ROBOTS = "*"


@dataclass(frozen=True)
class RobotView:
    """One robot's card on the page."""

    robot_id: str
    state: (
        str  # autonomous | operator | paused | resetting | estopped | disconnected | idle | closed | starting
    )
    instruction: str
    episode_id: str  # "" between episodes
    episode_step: int
    episodes: int  # finished by this robot in this run
    policy_version: int
    progress: float  # the reward model's progress estimate in [0, 1]; NaN: none (no model, no episode)
    cameras: list[str]
    frame_seq: int  # changes when a newer frame can be fetched; -1: none yet
    late_chunks: int  # steps held because inference was late (this run)
    overruns: int  # control periods that ran late
    error: str = ""  # why the robot's status could not be read ("" when it could)


@dataclass(frozen=True)
class SessionView:
    """The session header and its small chart."""

    session_id: str
    episodes: int  # finished in this run
    success_rate: float  # over the last `recent` episodes; NaN: none yet
    recent: int
    success_curve: list[float]  # rolling success over the recent episodes, oldest first
    interventions_per_episode: float  # takeovers per episode over the recent episodes
    episodes_per_hour: float  # wall clock, since practice started
    learner_step: int
    head_version: int  # latest published head
    practice_s: float
    progress_model: str  # the reward model behind the progress estimates ("" if none)


@dataclass(frozen=True)
class Alert:
    """Something an operator should look at, aggregated per robot and kind."""

    robot_id: str
    kind: str  # late_chunk | estop | disconnected | reconnect | policy_error | nonfinite | ...
    text: str
    count: int  # how many times it happened
    first_t: float  # wall clock (time.time)
    last_t: float


@dataclass(frozen=True)
class ConsoleView:
    session: SessionView
    robots: list[RobotView]
    alerts: list[Alert] = field(default_factory=list)  # most recent first


@dataclass(frozen=True)
class CommandResult:
    """One robot's answer to a command from the page."""

    robot_id: str
    kind: str
    ok: bool
    error: str = ""  # the channel's refusal or why it could not be reached


class ConsoleBackend(Protocol):
    """What the console server needs from a session. The server calls it like this::

    view = backend.view()                        # every refresh, per page
    jpeg = backend.frame("sim-0", "top")         # when view says frame_seq changed
    results = backend.command("sim-0", "pause")  # a button; robot "*": every robot
    """

    def view(self) -> ConsoleView: ...

    def frame(self, robot_id: str, camera: str) -> bytes | None: ...

    def command(self, robot_id: str, kind: str) -> list[CommandResult]: ...


def rolling_success(outcomes: list[str], window: int) -> list[float]:
    """Success rate over the last ``window`` episodes at each episode (fewer at the start)."""
    hits = np.cumsum([o == "success" for o in outcomes], dtype=np.float64)
    out = []
    for i in range(len(outcomes)):
        lo = max(0, i + 1 - window)
        out.append(float((hits[i] - (hits[lo - 1] if lo else 0.0)) / (i + 1 - lo)))
    return out


def to_json(obj: Any) -> Any:
    """A view as JSON-ready data: NaN and infinities become null (JSON has no NaN)."""
    data = asdict(obj) if hasattr(obj, "__dataclass_fields__") else obj

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return clean(data)
