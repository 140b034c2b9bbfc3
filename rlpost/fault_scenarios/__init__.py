"""The faults of `rlpost bench faults`, one function per fault, each one real injection.

Each scenario builds what it needs under ``work``, injects its fault into real processes,
waits for the system to recover, checks what a user relies on, and returns a
:class:`rlpost.fault_scenarios.harness.FaultRun`. A failed check is ``survived=False`` with the reason
in ``detail`` (tests assert on it). Robot-side counts come from ``robot-server``
processes, which no actor-side fault touches.

One module per fault family; this package names them for `rlpost bench faults`
(:data:`SCENARIOS`) and for its helper processes (:data:`CHILDREN`):

- ``common``: the shared assets, practice config, recovery probes and check helpers.
- ``session_faults``: ``actor_kill``, ``session_resume``.
- ``learner_faults``: ``learner_kill``.
- ``robot_server_faults``: ``robot_server_kill``.
- ``store_faults``: ``store_writer_kill``, ``disk_full``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlpost.fault_scenarios.common import (
    IMAGE,
    MAX_STEPS,
    Assets,
    make_assets,
    practice_cfg,
    stop_mid_episode,
    stored_steps,
    wal_steps,
    wals_unlocked,
    watch_hold,
)
from rlpost.fault_scenarios.harness import FaultRun
from rlpost.fault_scenarios.learner_faults import learner_kill
from rlpost.fault_scenarios.robot_server_faults import robot_server_kill
from rlpost.fault_scenarios.session_faults import _child_session, actor_kill, session_resume
from rlpost.fault_scenarios.store_faults import _child_disk_full, _child_writer, disk_full, store_writer_kill

__all__ = [
    "CHILDREN",
    "IMAGE",
    "MAX_STEPS",
    "SCENARIOS",
    "Assets",
    "actor_kill",
    "disk_full",
    "learner_kill",
    "make_assets",
    "practice_cfg",
    "robot_server_kill",
    "session_resume",
    "stop_mid_episode",
    "store_writer_kill",
    "stored_steps",
    "wal_steps",
    "wals_unlocked",
    "watch_hold",
]

SCENARIOS: dict[str, Callable[[Assets, Path], FaultRun]] = {
    "actor_kill": actor_kill,
    "learner_kill": learner_kill,
    "robot_server_kill": robot_server_kill,
    "store_writer_kill": store_writer_kill,
    "disk_full": disk_full,
    "session_resume": session_resume,
}

CHILDREN: dict[str, Callable[[dict[str, Any]], int]] = {
    "session": _child_session,
    "writer": _child_writer,
    "disk_full": _child_disk_full,
}
