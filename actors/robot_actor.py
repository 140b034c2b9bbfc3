"""RobotActor: the Ray actor shell over :class:`actors.runner.RobotRunner` (no logic here).

``ray.remote`` is applied by ``rlpost.session`` (``max_concurrency >= 2`` so ``status()``
answers while ``run()`` is busy); tests and benchmarks drive RobotRunner directly.
"""

from __future__ import annotations

import numpy as np

from actors.config import ActorConfig
from actors.control_loop import EpisodeReport
from actors.live_view import FrameWindow
from actors.runner import ActorStatus, RobotRunner, RobotSnapshot


class RobotActor:
    """One robot: its control loop, policy copy, operator channel and store writer."""

    def __init__(self, cfg: ActorConfig) -> None:
        self._runner = RobotRunner.from_config(cfg)

    def run(self, episodes: int, estop_wait_s: float = 0.0) -> list[EpisodeReport]:
        """Run episodes (steps stream to the store as they happen); see RobotRunner.run."""
        return self._runner.run(episodes, estop_wait_s)

    def status(self) -> ActorStatus:
        """State, episode count, policy version and counters."""
        return self._runner.status()

    def snapshot(self) -> RobotSnapshot:
        """Status and the latest camera frames as JPEG (for the console)."""
        return self._runner.snapshot()

    def recent_frames(self, steps: list[int]) -> FrameWindow | None:
        """Observations of the episode in flight at ``steps`` (the console's progress estimate)."""
        return self._runner.recent_frames(steps)

    def operator_endpoint(self) -> str:
        """Where operator devices send commands for this robot."""
        return self._runner.channel.endpoint

    def offer_weights(self, tensors: dict[str, np.ndarray], version: int) -> bool:
        """Newer head weights (Ray resolves an object ref passed here); loaded between chunks."""
        return self._runner.offer_weights(tensors, version)

    def close(self) -> None:
        self._runner.close()
