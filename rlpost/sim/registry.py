"""Simulated robots by short name: ``make_robot("tabletop", image_size=48)``, ``make_robot("pusht")``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from rlpost.sim.base import SimRobot
from rlpost.sim.config import PeerConfig, SimConfig, nearest_name
from rlpost.sim.multistage import MultistageEnv
from rlpost.sim.peer import PEERS, PeerRobot, make_peer
from rlpost.sim.tabletop import TabletopEnv

TASKS: Mapping[str, type[SimRobot]] = MappingProxyType(
    {
        "tabletop": TabletopEnv,
        "multistage": MultistageEnv,
    }
)


def make_robot(
    task: str, cfg: SimConfig | PeerConfig | None = None, **overrides: object
) -> SimRobot | PeerRobot:
    """Build a simulated robot: a built-in task (:data:`TASKS`) or a peer suite (:data:`PEERS`).

    Args:
        task: a key of :data:`TASKS` or :data:`PEERS`.
        cfg: its config (:class:`SimConfig` for built-ins, whose ``task`` must match;
            :class:`PeerConfig` for peers); ``None`` for the defaults.
        **overrides: config fields to change, e.g. ``cameras=("top", "wrist")``.

    Returns:
        A ``gymnasium.Env`` that satisfies :class:`rlpost.interfaces.Robot`; call ``reset`` first.

    Raises:
        ValueError: an unknown task or config field (naming the nearest one), a config for
            another task, or a contradiction in the config.
        ModuleNotFoundError: a peer suite whose package is not installed.
    """
    if task in PEERS:
        if cfg is not None and not isinstance(cfg, PeerConfig):
            raise ValueError(
                f"make_robot({task!r}) is a peer suite and needs a PeerConfig, got {type(cfg).__name__}"
            )
        return make_peer(task, cfg, **overrides)
    if task not in TASKS:
        known = sorted([*TASKS, *PEERS])
        raise ValueError(
            f"unknown sim task {task!r}; registered tasks are {known}" + nearest_name(task, known)
        )
    if cfg is not None and not isinstance(cfg, SimConfig):
        raise ValueError(f"make_robot({task!r}) needs a SimConfig, got {type(cfg).__name__}")
    if cfg is not None and cfg.task != task:
        raise ValueError(
            f"make_robot({task!r}) got a SimConfig for task {cfg.task!r}; pass make_robot(cfg.task, cfg)"
        )
    names = [f.name for f in dataclasses.fields(SimConfig)]
    for key in overrides:
        if key not in names:
            raise ValueError(f"SimConfig has no field {key!r}" + nearest_name(key, names))
    base = cfg if cfg is not None else SimConfig(task=task)
    return TASKS[task](dataclasses.replace(base, **overrides))  # type: ignore[arg-type]
