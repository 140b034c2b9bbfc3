"""How fast the simulated robots step, images included (for ``rlpost bench`` and the docs)."""

from __future__ import annotations

import time

import numpy as np

from rlpost.sim.config import SimConfig
from rlpost.sim.registry import make_robot


def benchmark_sim(task: str, steps: int = 5000, cfg: SimConfig | None = None, seed: int = 0) -> dict:
    """Step a sim with uniform random actions (resetting at episode ends) and time it.

    Args:
        task: a registered task name.
        steps: env steps to time (resets included in the time).
        cfg: the sim's config (its task must be ``task``); default config otherwise.
        seed: seeds the env and the action stream.

    Returns:
        ``{"task", "steps", "episodes", "seconds", "steps_per_s", "us_per_step",
        "image_size", "cameras"}``.
    """
    robot = make_robot(task, cfg)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(steps, robot.robot_spec.action_dim)).astype(np.float32)
    robot.reset(seed=seed)
    episodes = 1
    t0 = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = robot.step(a)
        if terminated or truncated:
            robot.reset()
            episodes += 1
    seconds = time.perf_counter() - t0
    robot.close()
    return {
        "task": task,
        "steps": steps,
        "episodes": episodes,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "us_per_step": 1e6 * seconds / steps,
        "image_size": robot.cfg.image_size,
        "cameras": list(robot.cfg.cameras),
    }
