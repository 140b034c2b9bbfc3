"""Measurements behind the issue's numbers (not timed tests): control-loop jitter and bridge round trip.

python -c "from actors.bench import bench_control_loop as b; print(b(hz=50, seconds=5))"
python -c "from actors.bench import bench_bridge as b; print(b(image=224, n=500))"
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.config import BridgeConfig, ControlConfig
from actors.control_loop import ControlLoop
from actors.zmq_robot import ZmqRobot
from rlpost.data.episode_store import EpisodeStore
from rlpost.interfaces import OBS_IMAGES, OBS_INSTRUCTION, OBS_STATE
from rlpost.schema import RobotSpec


class ImageRobot:
    """A driver with one ``image`` x ``image`` camera and no physics, for timing the bridge."""

    def __init__(self, image: int = 224, state_dim: int = 6, action_dim: int = 3) -> None:
        self.robot_spec = RobotSpec(
            cameras={"top": (image, image)},
            state_dim=state_dim,
            action_dim=action_dim,
            action_low=np.full(action_dim, -1, np.float32),
            action_high=np.full(action_dim, 1, np.float32),
        )
        rng = np.random.default_rng(0)
        self._obs = {
            OBS_IMAGES: {"top": rng.integers(0, 255, (image, image, 3), dtype=np.uint8)},
            OBS_STATE: np.zeros(state_dim, np.float32),
            OBS_INSTRUCTION: "hold still",
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        return self._obs, {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        return self._obs, 0.0, False, False, {}

    def close(self) -> None:
        pass


class _ConstantPolicy:
    version = 0

    def act(self, obs: Any) -> np.ndarray:
        return np.zeros((16, 3), np.float32)


def _pct(x: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(x, 50)), "p99": float(np.percentile(x, 99)), "max": float(x.max())}


def bench_control_loop(hz: float = 50.0, seconds: float = 5.0, image: int = 64) -> dict[str, Any]:
    """Period jitter of the realtime loop on a camera-only robot with an instant policy, storing every step.

    Returns:
        ``{"hz", "steps", "period_ms": {p50, p99, max}, "jitter_ms": {p50, p99, max}, "overruns"}``;
        jitter is |period - 1/hz|.
    """
    steps = int(hz * seconds)
    with tempfile.TemporaryDirectory() as d, EpisodeStore.open(d) as store:
        loop = ControlLoop(
            ImageRobot(image),
            _ConstantPolicy(),
            store,
            control=ControlConfig(hz=hz, realtime=True, execute=8, lead_steps=2, max_steps=steps),
            task="bench",
        )
        loop.run_episode(seed=0)
        loop.close()
    ticks = np.asarray(loop.tick_ns, dtype=np.int64)
    period_ms = np.diff(ticks) / 1e6
    return {
        "hz": hz,
        "steps": steps,
        "period_ms": _pct(period_ms),
        "jitter_ms": _pct(np.abs(period_ms - 1e3 / hz)),
        "overruns": loop.overruns,
    }


def bench_bridge(image: int = 224, n: int = 500) -> dict[str, Any]:
    """Round trip of ``step`` through a robot-server subprocess on loopback (one image x image x 3 camera).

    Returns:
        ``{"image", "n", "rtt_ms": {p50, p99, max}, "bytes_per_obs"}``.
    """
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actors.robot_server",
            "--driver",
            "actors.bench:ImageRobot",
            "--set",
            f"image={image}",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if "listening on" not in line:
            raise RuntimeError(f"robot-server did not start: {line!r}")
        robot = ZmqRobot(line.split()[-1], BridgeConfig(timeout_s=5.0))
        robot.reset(seed=0)
        action = np.zeros(3, np.float32)
        for _ in range(20):  # warm up
            robot.step(action)
        rtt = np.empty(n)
        for i in range(n):
            t0 = time.perf_counter_ns()
            robot.step(action)
            rtt[i] = (time.perf_counter_ns() - t0) / 1e6
        robot.close()
    finally:
        proc.kill()
        proc.wait(10)
    return {"image": image, "n": n, "rtt_ms": _pct(rtt), "bytes_per_obs": image * image * 3}


@dataclass
class ActorsBenchConfig:
    """Settings of `rlpost bench actors`."""

    hz: float = 50.0
    seconds: float = 5.0  # realtime control loop run time
    image: int = 224  # bridge observation size (h = w), uint8 RGB
    round_trips: int = 500
    out: str = ""
