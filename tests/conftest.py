"""Shared fixtures: small policy configs that train in seconds on a CPU."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tests.support.badinput import pytest_terminal_summary  # noqa: F401 (prints the bad-input table)

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Test models are tiny: one thread is fastest for them, and two threads on a busy 2-core
# machine spin-wait each other (measured 4x slower per update).
torch.set_num_threads(1)


@pytest.fixture
def small_policy_cfg():
    """A VLA config small enough to overfit in a few seconds."""
    from rlpost.policy import ExpertConfig, PolicyConfig, TinyBackboneConfig

    def make(**overrides):
        kw = dict(
            state_dim=2,
            action_dim=2,
            horizon=8,
            cameras=["top"],
            tiny=TinyBackboneConfig(
                image_size=32, width=64, grid=4, keypoints=8, vision_depth=1, fusion_depth=1
            ),
            expert=ExpertConfig(width=64, depth=2),
        )
        kw.update(overrides)
        return PolicyConfig(**kw)

    return make


@pytest.fixture
def obs_batch():
    """B random observations with distinct instructions."""
    from rlpost.policy import ObsBatch

    def make(b: int = 4, cams=("top",), size=(32, 32), state_dim: int = 2, seed: int = 0):
        rng = np.random.default_rng(seed)
        words = ["red", "blue", "green", "pink", "cyan", "gold", "gray", "lime"]
        return ObsBatch(
            images={c: rng.integers(0, 255, (b, *size, 3), dtype=np.uint8) for c in cams},
            state=rng.normal(size=(b, state_dim)).astype(np.float32),
            instructions=[f"touch the {words[i % len(words)]} block {i}" for i in range(b)],
        )

    return make
