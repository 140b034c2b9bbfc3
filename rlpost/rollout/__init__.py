"""The rollout engine: the one episode loop every in-process rollout runs (see lockstep.py).

- :mod:`outcome` -- how an episode's end becomes its stored outcome (also used by the actors' loop)
- :mod:`operator_state` -- who holds control, the person's action for a step
- :mod:`recorder` -- how steps and episodes go into a store
- :mod:`acting` -- what acts when no person does (a batched chunk policy, per-step functions)
- :mod:`lockstep` -- many robots in lockstep, one batched plan per round
"""

from rlpost.rollout.acting import ChunkActor, ChunkFn, EpisodePlan, PlannedChunk, SampledBatch, StepActor
from rlpost.rollout.lockstep import EpisodeRollout, run_and_close, run_lockstep
from rlpost.rollout.operator_state import OperatorState
from rlpost.rollout.outcome import env_outcome, with_mark
from rlpost.rollout.recorder import NO_POLICY_VERSION, EpisodeRecorder, step_record

__all__ = [
    "NO_POLICY_VERSION",
    "ChunkActor",
    "ChunkFn",
    "EpisodePlan",
    "EpisodeRecorder",
    "EpisodeRollout",
    "OperatorState",
    "PlannedChunk",
    "SampledBatch",
    "StepActor",
    "env_outcome",
    "run_and_close",
    "run_lockstep",
    "step_record",
    "with_mark",
]
