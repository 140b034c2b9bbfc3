"""A hand-built episode meta and step, the same in a test and in the writer subprocesses it kills."""

from __future__ import annotations

import numpy as np

from rlpost.schema import EpisodeMeta, StepRecord


def meta(eid: str) -> EpisodeMeta:
    return EpisodeMeta(eid, "tabletop", "stack the cubes", "arm-1", "s1", "autonomous")


def step(t: int) -> StepRecord:
    rng = np.random.default_rng(t)
    return StepRecord(
        images={"front": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)},
        state=rng.standard_normal(4).astype(np.float32),
        action=rng.standard_normal(3).astype(np.float32),
        policy_action=rng.standard_normal(3).astype(np.float32),
        intervention=t % 5 == 0,
        policy_version=t // 10,
        t_ns=t * 20_000_000,
        frame_index=t,
    )
