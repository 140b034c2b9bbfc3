"""Checks that a step fits the episode it is appended to (beyond StepRecord.validate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlpost.schema import SchemaError, StepRecord


@dataclass
class EpisodeShape:
    """What the steps of one episode so far agree on; updated after each accepted step."""

    episode_id: str
    first: StepRecord | None = None
    n_steps: int = 0
    last_t_ns: int = -(2**63)
    chunk_shape: tuple[int, ...] | None = None  # [H, A] of the episode's sampled chunks
    last_chunk_start: int = -1

    def check(self, step: StepRecord) -> None:
        """Raise unless ``step`` is a valid next step of this episode.

        Checks dtypes and shapes (StepRecord.validate), scalar field types, that
        ``frame_index`` is the next position (a lost or repeated step is an error, not a
        gap in the data), that ``t_ns`` does not go backwards, and that cameras and array
        shapes match the episode's first step.

        Raises:
            SchemaError: the text names the episode, the frame and the field.
        """
        where = f"episode {self.episode_id!r} frame {self.n_steps}"
        if not isinstance(step, StepRecord):
            raise SchemaError(f"{where}: expected a StepRecord, got {type(step).__name__}")
        step.validate(where)
        for name in ("policy_version", "t_ns", "frame_index", "chunk_start"):
            v = getattr(step, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise SchemaError(f"{where}: {name} must be an int, got {type(v).__name__}")
        if not isinstance(step.intervention, (bool, np.bool_)):
            raise SchemaError(f"{where}: intervention must be a bool, got {type(step.intervention).__name__}")
        r = step.reward
        if isinstance(r, (bool, np.bool_)) or not isinstance(r, (float, int, np.floating, np.integer)):
            raise SchemaError(f"{where}: reward must be a float, got {type(r).__name__}")
        if step.frame_index != self.n_steps:
            raise SchemaError(
                f"{where}: frame_index={step.frame_index}, expected {self.n_steps} (steps in order, none missing)"
            )
        if step.t_ns < self.last_t_ns:
            raise SchemaError(f"{where}: t_ns={step.t_ns} is before the previous step's {self.last_t_ns}")
        if step.sampled is not None:
            if step.sampled.start <= self.last_chunk_start:
                raise SchemaError(
                    f"{where}: a sampled chunk from frame {step.sampled.start} follows one from frame "
                    f"{self.last_chunk_start} (each chunk is recorded once, in order)"
                )
            if self.chunk_shape is not None and step.sampled.actions.shape != self.chunk_shape:
                raise SchemaError(
                    f"{where}: sampled chunk has shape {step.sampled.actions.shape}, the episode's first had {self.chunk_shape}"
                )
        first = self.first
        if first is None:
            return
        if set(step.images) != set(first.images):
            raise SchemaError(
                f"{where}: images has cameras {sorted(step.images)}, the first step had {sorted(first.images)}"
            )
        pairs = [(f"images[{c!r}]", step.images[c], first.images[c]) for c in first.images]
        pairs += [(n, getattr(step, n), getattr(first, n)) for n in ("state", "action", "policy_action")]
        for name, got, ref in pairs:
            if got.shape != ref.shape:
                raise SchemaError(
                    f"{where}: {name} has shape {got.shape}, the episode's first step had {ref.shape}"
                )

    def accept(self, step: StepRecord) -> None:
        """Record that ``step`` was checked and written."""
        if self.first is None:
            self.first = step
        if step.sampled is not None:
            self.chunk_shape, self.last_chunk_start = step.sampled.actions.shape, step.sampled.start
        self.n_steps += 1
        self.last_t_ns = int(step.t_ns)
