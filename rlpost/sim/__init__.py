"""Simulated robots: built-in tabletop tasks, peer-suite adapters, scripted experts, a simulated operator.

::

    from rlpost.sim import make_robot, make_expert, SimulatedOperator
    robot = make_robot("multistage", cameras=("top", "wrist"))
"""

from __future__ import annotations

from rlpost.sim.base import SimRobot
from rlpost.sim.bench import benchmark_sim
from rlpost.sim.config import ExpertConfig, PeerConfig, SimConfig, SimOperatorConfig, with_policy_cameras
from rlpost.sim.experts import DemoInfo, Expert, make_expert
from rlpost.sim.operator import SimulatedOperator, Takeover
from rlpost.sim.peer import PEERS, PeerRobot, make_peer
from rlpost.sim.registry import TASKS, make_robot
from rlpost.sim.world import SimState

__all__ = [
    "PEERS",
    "TASKS",
    "DemoInfo",
    "Expert",
    "ExpertConfig",
    "PeerConfig",
    "PeerRobot",
    "SimConfig",
    "SimOperatorConfig",
    "SimRobot",
    "SimState",
    "SimulatedOperator",
    "Takeover",
    "benchmark_sim",
    "make_expert",
    "make_peer",
    "make_robot",
    "with_policy_cameras",
]
